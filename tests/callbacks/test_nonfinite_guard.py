"""The non-finite guard stops or skips at the exact step, names it, and leaves finite, loadable weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.tiny_runs import BatchTamper, mlp, train_tiny
from trainkit.callbacks import NonFiniteGuard
from trainkit.callbacks.nonfinite_guard import NonFiniteGuardError
from trainkit.doctor.curves import NONFINITE_KEY, read_metrics
from trainkit.tasks import ClassificationModule

BAD_STEP = 7  # epoch 0 has 40 batches of 32 (1,258 training digits), so step 7 is batch 7 of epoch 0


def _load(path: str | Path) -> ClassificationModule:
    model = ClassificationModule(backbone=mlp(), num_classes=10, in_chans=1)
    model.load_state_dict(torch.load(path, weights_only=False)["state_dict"])
    return model


def test_stop_at_the_bad_step_with_good_weights_saved(tmp_path: Path) -> None:
    guard = NonFiniteGuard("stop")
    with pytest.warns(UserWarning, match=f"step {BAD_STEP} \\(epoch 0, batch {BAD_STEP}\\).*bad data"):
        run = train_tiny(tmp_path, epochs=3, callbacks=[BatchTamper(BAD_STEP, math.inf), guard])
    [event] = guard.events
    assert (event["step"], event["epoch"], event["batch_idx"]) == (BAD_STEP, 0, BAD_STEP)
    assert run.trainer.global_step == BAD_STEP + 1  # of 3 x 40: the bad step was the last one, its update dropped
    saved = _load(event["saved"])
    for name, value in saved.state_dict().items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, run.model.state_dict()[name])  # the dropped update left the weights as saved
    assert read_metrics(run.run_dir)[NONFINITE_KEY].steps.tolist() == [BAD_STEP]


def test_skip_drops_only_the_bad_step(tmp_path: Path) -> None:
    guard = NonFiniteGuard("skip")
    with pytest.warns(UserWarning, match="the step was skipped"):
        run = train_tiny(tmp_path, epochs=2, callbacks=[BatchTamper(BAD_STEP, math.inf), guard])
    assert [e["step"] for e in guard.events] == [BAD_STEP]
    assert run.trainer.global_step == 2 * 40  # trained on to the end
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    assert all(torch.isfinite(p).all() for p in _load(guard.events[0]["saved"]).parameters())
    val_loss = read_metrics(run.run_dir)["val/loss"].values
    assert val_loss[-1] < 0.6 * val_loss[0]  # and kept learning after the skipped step


class _PoisonWeights(Callback):
    """Sets one weight to NaN after step `at_step`, as a too-large update would."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = math.nan


def test_non_finite_weights_stop_without_overwriting_checkpoints(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=5)
    with pytest.raises(NonFiniteGuardError, match="weights are already non-finite"):
        train_tiny(tmp_path, epochs=1, callbacks=[_PoisonWeights(8), NonFiniteGuard("skip"), checkpoint],
                   enable_checkpointing=True)
    last = _load(tmp_path / "ckpt" / "last.ckpt")
    assert all(torch.isfinite(p).all() for p in last.parameters())  # the step-5 weights, not the poisoned ones
    assert not list((tmp_path / "ckpt").glob("last-good*.ckpt"))

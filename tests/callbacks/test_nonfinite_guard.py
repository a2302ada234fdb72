"""The non-finite guard names the step, keeps weights finite in every tensor, and stops with a non-zero exit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from tests.conftest import TINY_DIGITS
from tests.tiny_runs import BatchTamper, train_tiny
from trainkit.callbacks import NonFiniteGuard
from trainkit.callbacks.nonfinite_guard import NonFiniteGuardError
from trainkit.data import DigitsDataModule
from trainkit.doctor.curves import NONFINITE_KEY, read_metrics
from trainkit.tasks import ClassificationModule

BAD_STEP = 7  # epoch 0 has 40 batches of 32 (1,258 training digits), so step 7 is batch 7 of epoch 0


def _bn_mlp() -> nn.Module:
    """The digits MLP with a BatchNorm: its running statistics are buffers a NaN forward pass poisons."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def _state(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


class _Losses(Callback):
    """The test's own record of every step's loss (read per step here, which the guard must not do)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        self.losses[trainer.global_step - 1] = float(outputs["loss"])


def test_stop_names_the_first_bad_step_read_only_on_logging_steps(tmp_path: Path) -> None:
    guard = NonFiniteGuard("stop")
    with pytest.raises(NonFiniteGuardError, match=f"step {BAD_STEP} \\(epoch 0, batch {BAD_STEP}\\).*loss=") as err:
        train_tiny(tmp_path, epochs=3, log_every=5, callbacks=[BatchTamper(BAD_STEP, math.inf), guard])
    [event] = guard.events
    assert (event["step"], event["epoch"], event["batch_idx"]) == (BAD_STEP, 0, BAD_STEP)
    # Read at the logging step after it (step 9): the last weights verified finite are those of the check at step 5.
    assert Path(event["saved"]).name == "last-good-step5.ckpt" and event["saved"] in str(err.value)
    assert _all_finite(_state(event["saved"]))
    assert torch.load(event["saved"], weights_only=True)["global_step"] == 5  # the name and the content agree
    assert read_metrics(tmp_path / "run" / "version_0")[NONFINITE_KEY].steps.tolist() == [BAD_STEP]


def test_batchnorm_statistics_of_the_saved_weights_are_finite(tmp_path: Path) -> None:
    # SGD at lr 1e3: the loss explodes within a few steps and the forward pass writes NaN into BatchNorm's buffers.
    guard, losses = NonFiniteGuard("stop"), _Losses()
    model = ClassificationModule(backbone=_bn_mlp(), num_classes=10, in_chans=1)
    model.optimizer_config.name, model.optimizer_config.lr = "sgd", 1e3
    trainer = Trainer(max_epochs=2, logger=CSVLogger(tmp_path), log_every_n_steps=10, callbacks=[losses, guard],
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, accelerator="cpu")
    with pytest.raises(NonFiniteGuardError):
        trainer.fit(model, datamodule=DigitsDataModule(batch_size=32, image_size=None, in_chans=1))
    first_bad = min(step for step, loss in losses.losses.items() if not math.isfinite(loss))
    [event] = guard.events
    assert event["step"] == first_bad
    saved = _state(event["saved"])
    assert any("running_var" in key for key in saved)
    assert _all_finite(saved)
    assert _all_finite(model.state_dict())  # restored in place too: nothing after this sees the bad weights


def test_skip_drops_the_bad_step_and_its_batchnorm_update(tmp_path: Path) -> None:
    guard = NonFiniteGuard("skip")
    run = train_tiny(tmp_path, epochs=2, log_every=10, callbacks=[BatchTamper(BAD_STEP, math.inf), guard])
    assert [e["step"] for e in guard.events] == [BAD_STEP] and "bad data" in guard.events[0]["cause"]
    assert run.trainer.global_step == 2 * 40  # trained on to the end
    assert _all_finite(run.model.state_dict())
    assert _all_finite(_state(guard.events[0]["saved"]))
    val_loss = read_metrics(run.run_dir)["val/loss"].values
    assert val_loss[-1] < 0.6 * val_loss[0]  # and kept learning after the skipped step


def test_skip_restores_batchnorm_buffers(tmp_path: Path) -> None:
    guard = NonFiniteGuard("skip")
    model = ClassificationModule(backbone=_bn_mlp(), num_classes=10, in_chans=1)
    Trainer(max_steps=12, logger=CSVLogger(tmp_path), log_every_n_steps=5, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
            callbacks=[BatchTamper(BAD_STEP, math.nan), guard]).fit(
        model, datamodule=DigitsDataModule(batch_size=32, image_size=None, in_chans=1))
    assert [e["step"] for e in guard.events] == [BAD_STEP]
    assert _all_finite(model.state_dict())  # the NaN batch's running mean/var update was undone


class _PoisonWeights(Callback):
    """Sets one weight to NaN after step `at_step`, as a too-large update would."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = math.nan


def test_non_finite_weights_never_reach_a_checkpoint(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=5)
    # The NaN weight makes step 8's loss NaN: caught at the step-10 checkpoint, before it is written.
    with pytest.raises(NonFiniteGuardError, match=r"step 8 \(epoch 0, batch 8\)"):
        train_tiny(tmp_path, epochs=1, log_every=50, callbacks=[_PoisonWeights(8), NonFiniteGuard(), checkpoint],
                   enable_checkpointing=True)
    assert _all_finite(_state(tmp_path / "ckpt" / "last.ckpt"))  # the step-10 save was refused: step 5's is kept
    [good] = (tmp_path / "ckpt").glob("last-good*.ckpt")
    assert good.name == "last-good-step5.ckpt" and _all_finite(_state(good))


def test_cli_run_stopped_by_the_guard_exits_non_zero_and_tests_nothing(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    code = trainkit("fit", *TINY_DIGITS, "--model.init_args.optimizer.name", "sgd",
                    "--model.init_args.optimizer.lr", "1e3", "--doctor.preflight", "false",
                    "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "8")
    err = capsys.readouterr()
    assert code == 1 and "NonFiniteGuardError: non-finite value at step" in err.err
    assert "test/acc" not in err.out  # no test of the weights
    run = workdir / "runs" / "digits" / "version_0"
    checkpoints = list((run / "checkpoints").glob("*.ckpt"))
    assert any(p.name.startswith("last-good") for p in checkpoints)
    for path in checkpoints:  # best, last and last-good: every tensor finite
        assert _all_finite(_state(path)), path.name


class _InfGrad(Callback):
    """Makes one gradient Inf at step `at_step` while the loss stays finite (an overflow in backward)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_after_backward(self, trainer: Trainer, pl_module) -> None:  # noqa: ANN001
        if trainer.global_step == self.at_step:
            next(pl_module.parameters()).grad.view(-1)[0] = math.inf


@pytest.mark.parametrize(("check_grads", "named"), [(True, BAD_STEP), (False, BAD_STEP + 1)])
def test_check_grads_names_the_step_whose_gradients_broke(tmp_path: Path, check_grads: bool, named: int) -> None:
    guard = NonFiniteGuard("stop", check_grads=check_grads)
    with pytest.raises(NonFiniteGuardError, match=f"step {named} "):
        train_tiny(tmp_path, epochs=1, log_every=10, callbacks=[_InfGrad(BAD_STEP), guard])
    # Without the gradient norm the bad update shows one step later, in the loss it made non-finite.
    assert "gradient norm=inf" in guard.events[0]["what"] or not check_grads

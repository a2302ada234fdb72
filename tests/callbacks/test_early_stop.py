"""EarlyStop: `--early_stopping.restore_best` leaves the best checkpoint's weights in the model when fit ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from tests.conftest import TINY_DIGITS
from trainkit.cli import TrainkitCLI


class WorseEachEpoch(Callback):
    """Logs `val/score` = -epoch: with --mode max the first epoch is always the best (an injected fault)."""

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("val/score", -float(trainer.current_epoch))


WORSENING = ["--trainer.callbacks+", f"{__name__}.WorseEachEpoch", "--monitor", "val/score", "--mode", "max",
             "--early_stopping.restore_best", "true", "--test_after_fit", "false",  # and no patience
             "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_restore_best_leaves_the_best_checkpoints_weights_not_the_last_epochs(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = TrainkitCLI(["fit", *TINY_DIGITS, *WORSENING, "--trainer.max_epochs", "3"])
    assert cli.trainer.current_epoch == 3  # no patience, no stop: Lightning's patience 0 stops at the 2nd validation
    ckpts = workdir / "runs" / "digits" / "version_0" / "checkpoints"
    best = torch.load(ckpts / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 0 and last["global_step"] == 3  # last.ckpt still holds the last weights
    assert not _same(best["state_dict"], last["state_dict"])
    assert _same(cli.model.state_dict(), best["state_dict"])
    assert "restored the best weights (epoch 1 of 3, val/score=0.0000)" in capsys.readouterr().out


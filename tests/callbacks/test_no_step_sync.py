"""No host-device read from trainkit's own code on training steps that are not logged, in a default `trainkit fit`.

`Tensor.item`, `Tensor.cpu` and `Tensor.tolist` are the reads that make the host wait for the device; each call is
attributed to trainkit when a trainkit file is on the stack (the task, a callback, the progress bar, logging).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer

import trainkit
from tests.conftest import TINY_DIGITS

TRAINKIT = str(Path(trainkit.__file__).parent)
# These start the run, so they are on every stack: a read with no other trainkit frame above them is Lightning's own.
ENTRY = {"cli.py", "console.py", "fit_with_oom_recovery"}


class StepWindow(Callback):
    """Marks where the training steps run: from each batch's start to validation or the end of the epoch."""

    trainer: Trainer | None = None
    active = False

    def on_train_batch_start(self, trainer: Trainer, *args) -> None:  # noqa: ANN002
        StepWindow.trainer, StepWindow.active = trainer, True

    def on_validation_start(self, trainer: Trainer, *args) -> None:  # noqa: ANN002
        StepWindow.active = False

    def on_train_epoch_end(self, trainer: Trainer, *args) -> None:  # noqa: ANN002
        StepWindow.active = False


def _trainkit_frame() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(TRAINKIT) and not {Path(path).name, frame.f_code.co_name} & ENTRY:
            return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return None


def test_no_trainkit_read_on_steps_that_are_not_logged(
    workdir: Path, trainkit, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    calls: list[tuple[int, bool, str, str]] = []

    def counting(name: str):  # noqa: ANN202
        original = getattr(torch.Tensor, name)

        def wrapper(self: torch.Tensor, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            trainer = StepWindow.trainer
            if StepWindow.active and trainer is not None and trainer.training:
                where = _trainkit_frame()
                if where is not None:
                    logged = trainer._logger_connector.should_update_logs
                    calls.append((trainer.fit_loop.epoch_loop._batches_that_stepped, logged, name, where))
            return original(self, *args, **kwargs)

        return wrapper

    for name in ("item", "cpu", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    code = trainkit("fit", *TINY_DIGITS, "--trainer.limit_train_batches", "12", "--trainer.log_every_n_steps", "4",
                    "--trainer.enable_progress_bar", "true",
                    "--trainer.callbacks+=tests.callbacks.test_no_step_sync.StepWindow")
    assert code == 0
    unlogged = [call for call in calls if not call[1]]
    assert not unlogged, unlogged
    # The counter does see trainkit's reads: the guard's check and the monitors on the logging steps 3, 7, 11.
    assert {step for step, *_ in calls} == {3, 7, 11}

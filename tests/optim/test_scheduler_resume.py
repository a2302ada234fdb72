"""Resuming into another run length: the schedule follows the new length; a schedule of another kind is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_one_cycle_run_resumed_for_longer_follows_the_new_length(workdir: Path, trainkit) -> None:  # noqa: ANN001
    # digits.yaml steps a one-cycle schedule; torch's OneCycleLR alone ends in "Tried to step 6 times".
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    assert trainkit("fit", *TINY_DIGITS, "--trainer.max_epochs", "2", "--ckpt_path", "last",
                    "--test_after_fit", "false") == 0
    last = torch.load(workdir / "runs/digits/version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 8
    assert last["lr_schedulers"][0]["total_steps"] == 8 and last["lr_schedulers"][0]["last_epoch"] == 8


def test_a_schedule_of_another_kind_is_refused_in_one_line(workdir: Path, trainkit,  # noqa: ANN001
                                                           capsys: pytest.CaptureFixture) -> None:
    # 3 steps are too few for one-cycle: it fell back to a constant LR, whose state one-cycle cannot take (KeyError).
    assert trainkit("fit", *TINY_DIGITS, "--trainer.limit_train_batches", "3", "--test_after_fit", "false") == 0
    capsys.readouterr()
    assert trainkit("fit", *TINY_DIGITS, "--trainer.max_epochs", "2", "--ckpt_path", "last",
                    "--test_after_fit", "false") == 2
    assert "LR schedule is of another kind than this run's" in _error_line(capsys)

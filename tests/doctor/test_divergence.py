"""A loss that rises by orders of magnitude is named divergence, with the LR as the likely cause, before and after
training (it was once read as "an LR far too small" by the preflight and as "healthy" by the diagnosis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS

HUGE_LR = ["--model.init_args.optimizer.lr", "50"]


def test_the_preflight_names_divergence_and_the_lr(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_DIGITS, *HUGE_LR, "--doctor.overfit_steps", "8") != 0
    err = capsys.readouterr().err
    assert "far too small" not in err
    assert "the loss diverges on one batch" in err and "lower --model.init_args.optimizer.lr" in err


def test_the_end_of_fit_diagnosis_names_divergence(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_DIGITS, *HUGE_LR, "--doctor.preflight", "false", "--doctor.diagnose", "true",
                    "--trainer.max_epochs", "2",
                    "--trainer.limit_train_batches", "10", "--trainer.log_every_n_steps", "1",
                    "--test_after_fit", "false") == 0
    out = capsys.readouterr().out
    assert "healthy" not in out
    assert "diverging" in out and "orders of magnitude" in out and "LR too high" in out

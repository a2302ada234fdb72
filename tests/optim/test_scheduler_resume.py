"""Resuming with another run length is refused in one line instead of torch's "Tried to step" or a KeyError."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("first_batches", ["4", "3"], ids=["onecycle", "fallen-back-to-constant"])
def test_resuming_a_longer_run_is_refused_in_one_line(workdir: Path, trainkit, capsys: pytest.CaptureFixture,  # noqa: ANN001
                                                       first_batches: str) -> None:
    # digits.yaml steps a one-cycle schedule; 3 steps are too few for it and fall back to a constant LR.
    assert trainkit("fit", *TINY_DIGITS, "--trainer.limit_train_batches", first_batches, "--test_after_fit",
                    "false") == 0
    capsys.readouterr()
    assert trainkit("fit", *TINY_DIGITS, "--trainer.max_epochs", "2", "--ckpt_path", "last",
                    "--test_after_fit", "false") == 2
    assert "does not stretch a schedule on resume; resume with the run length it started with" in _error_line(capsys)

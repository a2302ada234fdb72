"""Where stdout is not a terminal (a log file, SLURM), every task family's `trainkit fit` writes one line per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.families import FAMILIES


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_one_line_per_epoch_for_every_family(family: str, workdir: Path, trainkit,
                                             capsys: pytest.CaptureFixture) -> None:
    # The progress bar is left on: the CLI picks EpochLines itself because pytest's stdout is not a terminal.
    assert trainkit("fit", *FAMILIES[family], "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                    "--trainer.limit_val_batches", "1", "--trainer.enable_model_summary", "false",
                    "--test_after_fit", "false", "--doctor.preflight", "false", "--doctor.diagnose", "false") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"], lines
    assert all("train/loss " in line and "val/loss " in line for line in lines), lines

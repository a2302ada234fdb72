"""EpochLines: one line per epoch with the key metrics (what a log file gets instead of a redrawn bar)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_runs import train_tiny
from trainkit.callbacks.progress import EpochLines


def test_one_line_per_epoch_with_the_key_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train_tiny(tmp_path, epochs=3, callbacks=[EpochLines()], enable_progress_bar=True, limit_train_batches=3,
               limit_val_batches=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    for line in lines:
        assert "val/loss" in line and "val/acc" in line and "train/loss " in line and "_step" not in line
    assert all(", eta " in line for line in lines[:2]) and ", eta" not in lines[2]  # the fit's time left, 0 at the end

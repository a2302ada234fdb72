"""The console entry's one-line errors for failures no command can foresee: a disk that fills up mid-run."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from trainkit.hpc.atomic import checkpoint_problem


def test_a_disk_that_fills_up_while_writing_the_metrics_is_named_in_one_line_and_the_checkpoints_stay_whole(
        workdir: Path, trainkit, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    write_rows = csv.DictWriter.writerows
    checkpoints = workdir / "out" / "digits" / "version_0" / "checkpoints"

    def fills_up_after_the_first_checkpoint(self: csv.DictWriter, rows: object) -> None:
        if (checkpoints / "last.ckpt").exists():
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name
        write_rows(self, rows)

    monkeypatch.setattr(csv.DictWriter, "writerows", fills_up_after_the_first_checkpoint)  # metrics.csv's writes
    capsys.readouterr()
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false", "--runs_dir", "out",
                    "--trainer.max_epochs", "2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"trainkit: error: no space left on the device of {workdir / 'out'} (No space left on device); free space "
        "there or pass --runs_dir on another disk"), err
    assert [checkpoint_problem(checkpoints / name) for name in ("best.ckpt", "last.ckpt")] == [None, None]

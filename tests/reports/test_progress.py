"""A running run's time left: written to progress.json on logging steps, shown by `trainkit runs`."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.commands.test_runs_command import _rows
from trainkit.reports.progress import read_eta, remaining_seconds, write_progress
from trainkit.reports.provenance import PROVENANCE_FILE, _process_start


def test_remaining_time_follows_the_pace_so_far() -> None:
    assert remaining_seconds(10, 40, 5.0) == pytest.approx(15.0)
    assert remaining_seconds(0, 40, 5.0) is None and remaining_seconds(10, float("inf"), 5.0) is None


def test_runs_shows_the_time_left_of_a_running_run(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    # The files a running fit writes: its provenance (this live process) and its progress at a logging step.
    run = workdir / "runs" / "digits" / "version_0"
    run.mkdir(parents=True)
    (run / PROVENANCE_FILE).write_text(json.dumps({
        "state": "running", "host": socket.gethostname(), "pid": os.getpid(),
        "process_start": _process_start(os.getpid()), "started": "2026-01-01T00:00:00+00:00"}))
    write_progress(run, steps_done=100, steps_total=400, elapsed=50.0)  # 0.5 s a step, 300 steps to go
    assert 148 < read_eta(run) <= 150
    assert read_eta(run, now=time.time() + 60) == pytest.approx(90, abs=2)
    assert trainkit("runs") == 0
    row = _rows(capsys.readouterr().out)["digits"]
    assert row["state"] == "running" and row["eta"] in {"2m29s", "2m30s"}

"""`trainkit runs`: finished, failed, interrupted (a real SIGKILL) and running runs told apart, with provenance."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from tests.hpc._runs import ForkedRun


def _rows(output: str) -> dict[str, dict[str, str]]:
    """experiment -> {column: cell} of a `trainkit runs` table (cells hold no double spaces)."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0].split()
    table = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        if len(cells) == len(header):
            table[cells[0]] = dict(zip(header, cells, strict=True))
    return table


def _wait_for(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_runs_tells_finished_failed_running_and_killed_apart(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture
) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--experiment", "ok", "--test_after_fit", "false") == 0
    assert trainkit("fit", *TINY_DIGITS, "--experiment", "broken", "--model.init_args.backbone",
                    "tests.commands.faulty_nets.FailsAtStep", "--model.init_args.backbone.at_call", "3") == 1

    # A run that is still going, then SIGKILLed: a fork of this process (a fresh interpreter is ~7 s of CPU).
    process = ForkedRun("fit", *TINY_DIGITS, "--experiment", "killed", "--trainer.max_epochs", "1000",
                        "--trainer.limit_val_batches", "1", cwd=workdir)
    killed = workdir / "runs" / "killed" / "version_0"
    try:
        _wait_for(lambda: (killed / "checkpoints" / "last.ckpt").is_file(), 240, "the subprocess's first epoch")
        capsys.readouterr()
        assert trainkit("runs") == 0
        assert _rows(capsys.readouterr().out)["killed"]["state"] == "running"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    assert trainkit("runs") == 0
    table = _rows(capsys.readouterr().out)
    assert {name: row["state"] for name, row in table.items()} == {
        "ok": "finished", "broken": "failed", "killed": "interrupted"}
    assert table["ok"]["epochs"] == "1" and table["ok"]["steps"] == "4"
    assert table["ok"]["best"].startswith("val/acc=")
    assert int(table["killed"]["epochs"]) >= 1

    record = json.loads((workdir / "runs/broken/version_0/provenance.json").read_text())
    assert record["state"] == "failed" and record["error"] == "RuntimeError: injected fault at the third batch"
    record = json.loads((killed / "provenance.json").read_text())
    assert record["state"] == "running" and record["pid"] == process.pid and record["ended"] is None
    assert record["argv"][:2] == ["fit", "--config"] and record["versions"]["torch"]

    assert trainkit("runs", "runs/ok/version_0") == 0  # one run: its provenance too
    out = capsys.readouterr().out
    for fact in ("command    trainkit fit --config", "versions   python", "lightning", "timm", "host", "devices",
                 "slurm job", "started", "ended"):
        assert fact in out, fact
    assert trainkit("runs", "no_such_experiment") == 2
    assert "is neither a folder nor an experiment" in capsys.readouterr().err


def test_runs_json_lists_each_run_with_its_metrics_and_provenance(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture
) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "true", "--doctor.diagnose", "false") == 0
    capsys.readouterr()
    assert trainkit("runs", "--json") == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["experiment"] == "digits" and run["run"] == "version_0" and run["state"] == "finished"
    assert run["epochs"] == 1 and run["steps"] == 4 and run["monitor"] == "val/acc"
    assert 0 <= run["test"]["test/acc"] <= 1 and run["provenance"]["command"].startswith("trainkit fit")

"""`trainkit profile` runs real steps under torch.profiler and writes a trace, an operator table and the step split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS


def test_profile_writes_trace_table_and_split(workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert trainkit("profile", *TINY_DIGITS, "--steps", "3", "--warmup", "1", "--rows", "5") == 0
    out = capsys.readouterr().out
    folder = workdir / "runs" / "digits" / "profile"
    trace = json.loads((folder / "trace.json").read_text())
    assert any(event.get("name") == "aten::convolution" for event in trace["traceEvents"])
    assert "Self CPU" in (folder / "top_ops.txt").read_text()
    assert "3 steps on CPU after 1 warm-up steps" in out
    shares = {line.split()[0]: float(line.split()[-1].rstrip("%")) for line in out.splitlines()
              if line.strip().split(" ")[0] in ("data", "forward", "backward", "optimizer")}
    assert set(shares) == {"data", "forward", "backward", "optimizer"}
    assert shares["forward"] > 0 and shares["backward"] > 0
    assert not (workdir / "runs" / "digits" / "version_0").exists()  # a probe, not a run


def test_profile_rejects_zero_steps(workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert trainkit("profile", *TINY_DIGITS, "--steps", "0") == 2
    assert "--steps 0" in capsys.readouterr().err


def test_profile_keeps_the_runs_max_epochs(workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    # TINY_DIGITS: 1 epoch of 4 batches. 6 steps do not fit; the epochs are not silently made unbounded.
    assert trainkit("profile", *TINY_DIGITS, "--steps", "6", "--warmup", "0") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("trainkit: error: the run ended before 6 steps") and "--trainer.max_epochs" in error

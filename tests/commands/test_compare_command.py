"""`trainkit compare`: two real runs side by side, exactly the config keys that differ, one curves PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from trainkit.reports.compare import differing_keys, legend_labels
from trainkit.reports.summary import summarize


def test_compare_two_runs_lists_exactly_the_keys_that_differ(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture
) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false", "--trainer.max_epochs", "2",
                    "--model.init_args.optimizer.lr", "0.01") == 0
    capsys.readouterr()
    assert trainkit("compare", "digits") == 0  # the experiment: all its runs
    out = capsys.readouterr().out
    differ = out.split("config keys that differ")[1].split("\n\ncurves:")[0]
    keys = {line.split()[0] for line in differ.strip().splitlines()[1:]}
    assert keys == {"model.init_args.optimizer.lr", "trainer.max_epochs"}
    lr_line = next(line for line in differ.splitlines() if "optimizer.lr" in line)
    assert lr_line.split()[1:] == ["0.003", "0.01"]
    assert "best val/acc" in out and "1 / 4" in out and "2 / 8" in out
    png = workdir / "runs" / "digits" / "compare_version_0_version_1.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"curves: {png}" in out

    runs = workdir / "runs" / "digits"
    assert trainkit("compare", runs / "version_0", runs / "version_1", "--out", workdir / "two.png", "--json") == 0
    assert (workdir / "two.png").is_file()
    record = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in record["runs"]] == ["version_0", "version_1"]
    assert [r["epochs"] for r in record["runs"]] == [1, 2]
    assert record["differ"]["model.init_args.optimizer.lr"] == [0.003, 0.01]
    assert record["curves"] == str(workdir / "two.png")
    assert legend_labels([summarize(runs / "version_0"), summarize(runs / "version_1")]) == [
        "lr=0.003, max_epochs=1", "lr=0.01, max_epochs=2"]
    assert trainkit("compare", runs / "version_0") == 2
    assert "needs at least two runs" in capsys.readouterr().err


def test_differing_keys_by_hand() -> None:
    first = {"model": {"init_args": {"lr": 0.1, "layers": [1, 2]}}, "seed": 0, "only_here": 1}
    second = {"model": {"init_args": {"lr": 0.1, "layers": [1, 3]}}, "seed": 0}
    assert differing_keys([first, second]) == {"model.init_args.layers": [[1, 2], [1, 3]], "only_here": [1, "<unset>"]}
    assert differing_keys([first, first]) == {}

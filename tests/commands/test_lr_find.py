"""`trainkit lr-find` on the (shortened) digits experiment: a suggestion in range, the plot, a usable config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_CONFIG

SHORT_DIGITS = [
    "--config", str(DIGITS_CONFIG),
    "--model.init_args.backbone", "test_resnet",
    "--data.init_args.image_size", "16",
    "--trainer.enable_progress_bar", "false",
]


@pytest.mark.slow
def test_lr_find_suggests_plots_and_writes_a_config(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    code = trainkit("lr-find", *SHORT_DIGITS, "--min_lr", "1e-5", "--max_lr", "1", "--num_training", "24",
                    "--write_config", "tuned.yaml")
    assert code == 0
    out = capsys.readouterr().out
    found = re.search(r"suggested lr ([0-9.e+-]+) \(searched 1e-05 to 1, (\d+) steps\)", out)
    assert found, out
    suggestion = float(found.group(1))
    assert 1e-5 <= suggestion <= 1.0
    low, high = map(float, re.search(r"safe    ([0-9.e+-]+) to ([0-9.e+-]+)", out).groups())
    assert low <= suggestion <= high
    assert int(found.group(2)) == 24

    plot = workdir / "runs/digits/lr_find.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert not (workdir / "runs/digits/version_0").exists()  # a probe, not a run: no run folder, no checkpoints
    assert not list(workdir.glob(".lr_find*.ckpt"))

    tuned = yaml.safe_load((workdir / "tuned.yaml").read_text())
    assert tuned["model"]["init_args"]["optimizer"]["lr"] == pytest.approx(suggestion, rel=1e-2)
    assert tuned["model"]["init_args"]["scheduler"]["name"] == "onecycle"  # the rest of the experiment kept
    assert "logger" not in tuned["trainer"]
    # the written config is a valid experiment: plot-lr parses and builds it
    assert trainkit("plot-lr", "--config", "tuned.yaml", "--trainer.max_epochs", "1") == 0
    assert f"peak {suggestion:.4g}" in capsys.readouterr().out


def test_lr_find_rejects_a_bad_range(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    assert trainkit("lr-find", *SHORT_DIGITS, "--min_lr", "1", "--max_lr", "0.1") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("trainkit: error: --min_lr 1 and --max_lr 0.1 need 0 < min_lr < max_lr")
    assert "\n" not in error

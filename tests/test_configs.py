"""Every shipped config parses through the CLI, alone or composed with the trainer presets: no config drifts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_CONFIG, REPO

CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "tune")  # tune: search spaces
EXPERIMENTS = [p for p in CONFIGS if {"model", "data"} <= set(yaml.safe_load(p.read_text()) or {})]
PRESETS = [p for p in CONFIGS if p not in EXPERIMENTS]


def _print_config(trainkit, capsys: pytest.CaptureFixture, *configs: Path) -> dict:
    args = [arg for path in configs for arg in ("--config", str(path))]
    assert trainkit("fit", *args, "--print_config") == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("config", EXPERIMENTS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_experiment_config_parses(config: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    resolved = _print_config(trainkit, capsys, config)
    assert resolved["model"]["class_path"] and resolved["data"]["class_path"]
    assert resolved["experiment"] != "default", "each shipped experiment names its run folder"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_preset_composes_with_the_default_experiment(preset: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    resolved = _print_config(trainkit, capsys, DIGITS_CONFIG, preset)
    _assert_contains(resolved, yaml.safe_load(preset.read_text()))


def _assert_contains(resolved: object, given: object, where: str = "") -> None:
    """Every value the preset sets is in the resolved config (which adds the defaults around it)."""
    if isinstance(given, dict):
        assert isinstance(resolved, dict), where
        for key, value in given.items():
            _assert_contains(resolved[key], value, f"{where}.{key}")
    else:
        assert resolved == given, where

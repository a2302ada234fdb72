"""Every flag the doctor or preflight suggests parses with `trainkit fit --print_config`, so renaming an option can
never leave stale advice behind."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

import trainkit.doctor.preflight
from tests.conftest import TINY_DIGITS
from trainkit.doctor import CASES
from trainkit.doctor.advice import for_run
from trainkit.doctor.evidence import Hit, Settings

FLAG = re.compile(r"(?<![\w-])(--[a-z_][\w.]*)(?: ([^\s;,()]+))?")
# Preflight messages fill some values in at run time ({per_node}, {close[0]}): a value of the right type for each.
SAMPLE_VALUES = {"--trainer.devices": "2", "--trainer.num_nodes": "2", "--monitor": "val/acc",
                 "--model.init_args.optimizer.lr": "0.01"}


def _doctor_flags() -> list[list[str]]:
    """The flags of every case, for a run whose config gives an LR, a batch size and a best epoch (flags that depend
    on the run's task are walked per task family in test_advice.py)."""
    hit, run = Hit(0, 10, "", stop_epoch=4), Settings(lr=0.01, batch_size=32)
    flags = []
    for case in CASES.values():
        for suggestion in for_run(case.flags(hit, run), None):
            if suggestion.startswith("--"):
                flags.append(shlex.split(suggestion.split(" (")[0]))
    return flags


def _preflight_flags() -> list[list[str]]:
    """Each `--key value` in the message strings of preflight.py, run-time values replaced by a sample."""
    tree = ast.parse(Path(trainkit.doctor.preflight.__file__).read_text())
    flags = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        for key, value in FLAG.findall(re.sub(r"#SBATCH \S+", "", text)):
            if not value or "{" in value or value in ("or", "to"):
                assert key in SAMPLE_VALUES, f"preflight suggests {key} without a literal value: add a sample here"
                value = SAMPLE_VALUES[key]
            flags.append([key, value])
    return flags


def test_the_scan_finds_the_suggestions() -> None:
    doctor, preflight = _doctor_flags(), _preflight_flags()
    assert ["--trainer.gradient_clip_val", "1.0"] in doctor and ["--trainer.max_epochs", "5"] in doctor
    assert ["--trainer.strategy", "ddp"] in preflight and ["--trainer.devices", "2"] in preflight


def test_every_suggested_flag_parses(trainkit, capsys: pytest.CaptureFixture) -> None:
    flags = sorted({tuple(f) for f in _doctor_flags() + _preflight_flags()})
    # One parse for all (each costs seconds); only when it fails, one parse per flag to name the stale ones.
    if trainkit("fit", *TINY_DIGITS, *[part for flag in flags for part in flag], "--print_config") == 0:
        return
    capsys.readouterr()
    stale = [" ".join(flag) for flag in flags if trainkit("fit", *TINY_DIGITS, *flag, "--print_config") != 0]
    assert not stale, f"the doctor or preflight suggests flags that `trainkit fit` rejects: {stale}"


def test_clipping_advice_is_a_change_for_a_run_that_clips_already() -> None:
    hit = Hit(0, 10, "")
    flags = {clip: CASES["oscillating"].flags(hit, Settings(lr=0.01, gradient_clip_val=clip)) for clip in
             (None, 1.0, 0.5, 5.0)}
    assert "--trainer.gradient_clip_val 1.0" in flags[None] and "--trainer.gradient_clip_val 1.0" in flags[5.0]
    assert "--trainer.gradient_clip_val 0.5" in flags[1.0] and "--trainer.gradient_clip_val 0.25" in flags[0.5]
    config = {"trainer": {"gradient_clip_val": 1.0}, "model": {"init_args": {"optimizer": {"lr": 0.1}}}}
    assert Settings.of(config) == Settings(lr=0.1, gradient_clip_val=1.0)

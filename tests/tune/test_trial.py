"""A trial is a plain `trainkit fit`: its reporter is attached by flags, after the config's own callbacks."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY_DIGITS
from trainkit.cli import parse_only
from trainkit.tune.trial import reporter_flags


def test_the_reporter_flags_attach_the_trial_reporter_to_a_fit(tmp_path: Path) -> None:
    config = parse_only([*TINY_DIGITS, *reporter_flags(tmp_path / "study", 3)])
    reporter = config.trainer.callbacks[-1]
    assert reporter.class_path == "trainkit.tune.trial.TrialReporter"
    assert dict(reporter.init_args) == {"folder": str(tmp_path / "study"), "number": 3}

"""A trial is a plain `trainkit fit`: its reporter is attached by flags, after the config's own callbacks; how many
validations it spares from pruning, scaled to the trial's own length."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import Trainer

from tests.conftest import TINY_DIGITS
from trainkit.cli import parse_only
from trainkit.tune.trial import reporter_flags, warmup_validations


def test_the_reporter_flags_attach_the_trial_reporter_to_a_fit(tmp_path: Path) -> None:
    config = parse_only([*TINY_DIGITS, *reporter_flags(tmp_path / "study", 3)])
    reporter = config.trainer.callbacks[-1]
    assert reporter.class_path == "trainkit.tune.trial.TrialReporter"
    assert dict(reporter.init_args) == {"folder": str(tmp_path / "study"), "number": 3}


@pytest.mark.parametrize(("trainer", "setting", "spared"), [
    (dict(max_epochs=100), None, 25),  # a long trial: its first quarter is at chance level in every trial
    (dict(max_epochs=300), None, 75),  # a longer one (max_epochs searched): the same fraction of its run
    (dict(max_epochs=2), None, 1),  # never judged at its first validation
    (dict(max_epochs=20, check_val_every_n_epoch=2), None, 3),  # 10 validations
    (dict(max_steps=500, max_epochs=-1), None, 1),  # length in validations unknown: spare the first
    (dict(max_epochs=100), 0, 0),  # asked for explicitly
])
def test_the_first_quarter_of_each_trials_validations_is_never_pruned(trainer: dict, setting: int | None,
                                                                       spared: int) -> None:
    built = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, **trainer)
    assert warmup_validations(built, setting) == spared

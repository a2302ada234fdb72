"""A trial is a plain `trainkit fit`: its reporter is attached by flags, after the config's own callbacks; how many
validations it spares from pruning, scaled to the trial's own length."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from optuna.distributions import IntDistribution

from tests.conftest import DIGITS_CONFIG, TINY_DIGITS, tiny_argv
from trainkit.cli import parse_only
from trainkit.tune import study as studies
from trainkit.tune.trial import report_steps, reporter_flags, warmup_validations


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


@pytest.mark.parametrize(("reported", "validations", "total", "steps"), [
    (0, 1, None, [1]),  # lengths not searched: steps are validations
    (0, 1, 4, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]),
    (25, 2, 4, list(range(26, 51))),
    (33, 3, 300, []),  # 1% of the run not reached yet since the last report: nothing new to compare at
    (1, 4, 300, [2]),
])
def test_trials_of_searched_lengths_are_reported_by_percent_of_their_run(
        reported: int, validations: int, total: int | None, steps: list[int]) -> None:
    assert report_steps(reported, validations, total) == steps


def test_a_trial_of_a_searched_length_has_a_value_at_every_percent_of_its_run(tmp_path: Path, trainkit) -> None:  # noqa: ANN001
    settings = studies.StudySettings(name="lengths", monitor="val/loss", mode="min", n_trials=1, space={
        "trainer.max_epochs": {"type": "int", "low": 2, "high": 4}})
    folder = tmp_path / "study"
    studies.write_settings(folder, settings)
    studies.load(folder, settings).ask({"trainer.max_epochs": IntDistribution(2, 4)})
    argv = tiny_argv(DIGITS_CONFIG, "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
                     "--monitor", "val/loss", "--mode", "min", "--test_after_fit", "false", "--runs_dir",
                     tmp_path / "runs", *reporter_flags(folder, 0), epochs=4, limit_train_batches=1,
                     limit_val_batches=1)
    assert trainkit("fit", *argv) == 0
    values = studies.load(folder, settings).get_trials()[0].intermediate_values
    assert sorted(values) == list(range(1, 101))  # comparable with a trial of any other length at every percent
    assert values[25] == values[1] != values[26] and values[50] != values[51]  # each validation holds its quarter

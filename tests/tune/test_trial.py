"""Inside a trial: how many validations are spared from pruning, scaled to the trial's own length."""

from __future__ import annotations

import pytest
from lightning.pytorch import Trainer

from trainkit.tune.trial import warmup_validations


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

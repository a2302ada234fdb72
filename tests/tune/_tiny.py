"""A seconds-long tune setup shared by the tune tests: tiny digits trials and a search space with hopeless LRs."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DIGITS_CONFIG, REPO

# Two epochs of 3 batches of timm's test_resnet on 16 px digits: two validations, so a trial can be pruned at the
# first one and still leave a folder behind. val/loss (continuous) rather than val/acc (ties on one batch).
TRIAL_ARGS = [
    "--config", str(DIGITS_CONFIG),
    "--model.init_args.backbone", "test_resnet",
    "--data.init_args.image_size", "16",
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "3",
    "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
    "--test_after_fit", "false",
    "--doctor.diagnose", "false", "--doctor.overfit_steps", "0",
    "--monitor", "val/loss", "--mode", "min",
]

# LR from 1e-6 (nothing moves in 6 steps) to 1e-1. Trial 0 is the config's own values (LR 3e-3); with --sampler random
# --seed 20 the next draws are 2.3e-2, 3.1e-6, 2.2e-6: trials 2 and 3 are hopeless, so the median pruner has work.
SPACE = """\
model.init_args.optimizer.lr: {type: float, low: 1.0e-6, high: 1.0e-1, log: true}
model.init_args.label_smoothing: {type: float, low: 0.0, high: 0.2}
"""


@pytest.fixture
def trial_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials import this checkout and use one thread each, as the reruns they are compared with do."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def write_space(folder: Path, text: str = SPACE, name: str = "tiny") -> Path:
    """A search file in `folder`."""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def read_trials(study_folder: Path) -> list[dict[str, Any]]:
    """trials.csv as dicts."""
    with (study_folder / "trials.csv").open() as file:
        return list(csv.DictReader(file))


def journal_trials(study_folder: Path, name: str) -> list[Any]:
    """The study's trials as Optuna stored them."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(study_folder / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def monitored(run_dir: Path, name: str = "val/loss") -> list[float]:
    """Every logged value of `name` in a run's metrics.csv."""
    with (run_dir / "metrics.csv").open() as file:
        return [float(row[name]) for row in csv.DictReader(file) if row.get(name)]

"""Experiment trackers (`--trainer.logger` MLflow, Weights & Biases, ...): they log beside the run folder's own CSV
and TensorBoard loggers, and receive the full resolved config, as parameters and as the file config.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

# MLflow 3 refuses its local file store unless asked, and the logger is built while the config is parsed: a local,
# offline folder is what configs/loggers/mlflow.yaml means (an explicit MLFLOW_ALLOW_FILE_STORE still wins).
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def with_run_loggers(run_loggers: list[Logger], given: Any) -> list[Logger]:
    """The run folder's loggers first (so `trainer.log_dir` stays the run folder), then the user's trackers."""
    return [*run_loggers, *(given if isinstance(given, list | tuple) else [given])]


def log_config(trainer: Trainer, text: str, run_dir: Path) -> None:
    """Hand the resolved config (YAML `text`, as saved in `run_dir`) to every tracker among the trainer's loggers."""
    trackers = [lg for lg in trainer.loggers if not isinstance(lg, CSVLogger | TensorBoardLogger)]
    if not trackers:
        return
    import yaml

    config = yaml.safe_load(text) or {}
    for tracker in trackers:
        tracker.log_hyperparams(config)  # each logger flattens nested keys its own way (model/init_args/lr)
        if isinstance(tracker, MLFlowLogger):
            client, run_id = tracker.experiment, tracker.run_id
            client.log_text(run_id, text, "config.yaml")
            client.set_tag(run_id, "trainkit.run_dir", str(run_dir))
            client.set_tag(run_id, "trainkit.experiment", str(config.get("experiment")))
        elif isinstance(tracker, WandbLogger):
            tracker.experiment.save(str(run_dir / "config.yaml"), base_path=str(run_dir), policy="now")

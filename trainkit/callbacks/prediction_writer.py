"""Writes what `trainkit predict` produced, in the task's own format, next to the run; with `--source PATH` the
predictions are of new inputs (a folder or glob of images, a CSV without its target, a JSONL of prompts)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from trainkit.errors import ConfigError


class PredictionWriter(BasePredictionWriter):
    """At the end of `predict`, hand all predictions to the task's `write_predictions`."""

    enabled = True
    """Always on (the CLI leaves out callbacks whose `enabled` is False)."""

    def __init__(
        self, out_dir: str | None = None, source: str | None = None, skip_unreadable: bool = False, top_k: int = 1
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            out_dir: folder for the prediction files; by default the run's log folder.
            source: new inputs to predict (`--source` for short): a folder or glob of images, a CSV without the
                target column, a JSONL of prompts; read like the run's data. None predicts the test split.
            skip_unreadable: skip (and name) an input that cannot be read instead of stopping.
            top_k: classification: also write the next best classes and their probabilities, up to k in all.
        """
        super().__init__(write_interval="epoch")
        if top_k < 1:
            raise ConfigError(f"predictions.top_k={top_k}; it must be 1 or more")
        self.out_dir, self.source, self.skip_unreadable, self.top_k = out_dir, source, skip_unreadable, top_k

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        if self.top_k > 1 and "top_k" not in inspect.signature(pl_module.write_predictions).parameters:
            raise ConfigError(f"{type(pl_module).__name__} has no top-k predictions; drop --predictions.top_k")
        if self.source is None:
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "source_dataset"):
            raise ConfigError(f"--source needs a trainkit DataModule that reads new inputs, not "
                              f"{type(datamodule).__name__}; use ImageFolderDataModule, CSVDataModule or "
                              "InstructionDataModule")
        while isinstance(getattr(datamodule, "data", None), LightningDataModule):  # a wrapper serves its data's loaders
            datamodule = datamodule.data
        datamodule.predict_source, datamodule.skip_unreadable = self.source, self.skip_unreadable

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
        if not trainer.is_global_zero or not predictions:
            return
        if isinstance(predictions[0], list):  # several predict dataloaders: one list each
            predictions = [p for per_loader in predictions for p in per_loader]
        out_dir = Path(self.out_dir or log_dir or ".")
        options = {"top_k": self.top_k} if self.top_k > 1 else {}
        path = pl_module.write_predictions(predictions, out_dir, **options)
        rank_zero_info(f"trainkit: predictions written to {path}")

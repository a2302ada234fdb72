"""Writes what `trainkit predict` produced, in the task's own format, next to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


class PredictionWriter(BasePredictionWriter):
    """At the end of `predict`, hand all predictions to the task's `write_predictions`."""

    enabled = True
    """Always on (the CLI leaves out callbacks whose `enabled` is False)."""

    def __init__(self, out_dir: str | None = None) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            out_dir: folder for the prediction files; by default the run's log folder.
        """
        super().__init__(write_interval="epoch")
        self.out_dir = out_dir

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
        if not trainer.is_global_zero or not predictions:
            return
        if isinstance(predictions[0], list):  # several predict dataloaders: one list each
            predictions = [p for per_loader in predictions for p in per_loader]
        out_dir = Path(self.out_dir or log_dir or ".")
        path = pl_module.write_predictions(predictions, out_dir)
        rank_zero_info(f"trainkit: predictions written to {path}")

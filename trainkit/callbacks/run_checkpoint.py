"""Checkpointing with trainkit's defaults: `best.ckpt` by the monitored metric and `last.ckpt`, written atomically."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from trainkit.hpc.atomic import TMP_SUFFIX, replace_atomically


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose defaults give each run `checkpoints/best.ckpt` and `checkpoints/last.ckpt`."""

    enabled = True
    """Always on (the CLI leaves out callbacks whose `enabled` is False)."""

    def __init__(
        self,
        monitor: str | None = "val/loss",
        mode: Literal["min", "max"] = "min",
        filename: str = "best",
        save_last: bool = True,
        save_top_k: int = 1,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        train_time_interval_minutes: float | None = None,
        save_weights_only: bool = False,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            monitor: metric that picks the best checkpoint (set once with the top-level --monitor).
            mode: whether a lower (min) or higher (max) monitored value is better.
            filename: file name of the best checkpoint.
            save_last: also keep `last.ckpt`, the point to resume from.
            save_top_k: how many best checkpoints to keep (-1 keeps all).
            every_n_epochs: save every N epochs.
            every_n_train_steps: save every N optimizer steps (keeps mid-epoch resume points fresh).
            train_time_interval_minutes: save every this many minutes of training.
            save_weights_only: drop optimizer and scheduler state (smaller, but cannot resume exactly).
        """
        from datetime import timedelta

        interval = timedelta(minutes=train_time_interval_minutes) if train_time_interval_minutes else None
        super().__init__(
            monitor=monitor,
            mode=mode,
            filename=filename,
            save_last=save_last,
            save_top_k=save_top_k,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=interval,
            save_weights_only=save_weights_only,
            auto_insert_metric_name=False,
        )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning only saves `last` here when nothing was saved in this session; with every_n_train_steps that
        # leaves the final steps out of last.ckpt. The finished run's weights always end up in it.
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        # Private ModelCheckpoint method (as are _save_last_checkpoint and _monitor_candidates): every save passes
        # here, so overriding it makes each one atomic.
        tmp = filepath + TMP_SUFFIX
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            replace_atomically(tmp, filepath)
        trainer.strategy.barrier("trainkit.RunCheckpoint")
        self._last_checkpoint_saved = filepath

    def save_now(self, trainer: Trainer) -> str:
        """Write `last.ckpt` now (e.g. on preemption) and return its path."""
        candidates = self._monitor_candidates(trainer)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
            return self.last_model_path
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        self._save_checkpoint(trainer, filepath)
        return filepath


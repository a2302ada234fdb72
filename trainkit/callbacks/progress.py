"""Lightning's rich progress bar, redrawn a few times a second instead of after every batch; one line per epoch
where stdout is not a terminal."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics


class ThrottledProgressBar(RichProgressBar):
    """RichProgressBar that updates at most every `interval` seconds during training.

    The stock bar reads every progress-bar metric after each batch, which converts them to Python numbers: a
    device synchronisation per step on GPU and measurable CPU time for small models. Here a step costs a clock read,
    and the metric values shown are read afresh only on logging steps (where the loggers read them anyway) and at
    the ends of epochs; a redraw in between shows the counters with the last values read.
    """

    def __init__(self, interval: float = 0.5, leave: bool = True) -> None:
        """Set how often the bar redraws.

        Args:
            interval: seconds between redraws (rich itself refreshes the screen at most 10 times a second).
            leave: keep the finished bars on screen.
        """
        super().__init__(leave=leave)
        self.interval = interval
        self._next_draw = 0.0
        self._shown: dict[str, Any] | None = None
        self._fresh = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        last = batch_idx + 1 >= self.total_train_batches
        self._fresh = trainer._logger_connector.should_update_logs
        if now >= self._next_draw or last:
            self._next_draw = now + self.interval
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._fresh = True

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        if self._fresh:
            self._shown = super().get_metrics(trainer, pl_module)
        return self._shown if self._shown is not None else get_standard_metrics(trainer)


class EpochLines(ProgressBar):
    """One line per epoch with the key metrics, for a stdout that is not a terminal (SLURM logs, CI).

    A redrawn bar written to a file becomes a column of fragments; a line per epoch reads well and greps well.
    Metrics are read once per epoch, never per step.
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        metrics = self.get_metrics(trainer, pl_module)
        shown = [f"{key.removesuffix('_epoch')} {_fmt(value)}" for key, value in metrics.items()
                 if key != "v_num" and not key.endswith("_step")]
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        seconds = time.monotonic() - self._epoch_start
        print(f"epoch {trainer.current_epoch + 1}/{total}  step {trainer.global_step}  {'  '.join(shown)}  "
              f"({seconds:.1f}s)", flush=True)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def silence_litlogger_tip() -> None:
    """Drop Lightning's advertising line for litlogger (printed at every Trainer start); other messages stay."""
    import logging

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoLitloggerTip) for f in log.filters):
            log.addFilter(_NoLitloggerTip())


class _NoLitloggerTip:
    def filter(self, record: Any) -> bool:
        return "litlogger" not in str(record.msg)

"""Lightning's rich progress bar, redrawn a few times a second instead of after every batch; one line per epoch
where stdout is not a terminal."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics
from lightning.pytorch.callbacks.progress.rich_progress import MetricsTextColumn, RichProgressBarTheme

from trainkit.reports.progress import FitClock
from trainkit.reports.table import duration


class ThrottledProgressBar(RichProgressBar):
    """RichProgressBar that updates at most every `interval` seconds during training, on one line.

    The stock bar reads every progress-bar metric after each batch, which converts them to Python numbers: a
    device synchronisation per step on GPU and measurable CPU time for small models. Here a step costs a clock read,
    and the metric values shown are read afresh only on logging steps (where the loggers read them anyway) and at
    the ends of epochs; a redraw in between shows the counters with the last values read.

    Epochs count from 1, as the epoch lines do; metrics show in 4 significant digits on the bar's line, cut with
    an ellipsis where the terminal is too narrow (Lightning's wraps them into a column of lines at 80 columns).
    """

    def __init__(self, interval: float = 0.5, leave: bool = True) -> None:
        """Set how often the bar redraws.

        Args:
            interval: seconds between redraws (rich itself refreshes the screen at most 10 times a second).
            leave: keep the finished bars on screen.
        """
        super().__init__(leave=leave, theme=RichProgressBarTheme(metrics_text_delimiter="  ", metrics_format=".4g"))
        self.interval = interval
        self._next_draw = 0.0
        self._shown: dict[str, Any] | None = None
        self._fresh = True
        self._clock = FitClock()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._clock.start(trainer)

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
            shown = super().get_metrics(trainer, pl_module)
            shown.pop("v_num", None)  # the run folder's version: printed when the fit ends
            self._shown = {key.removesuffix("_step").removesuffix("_epoch"): value for key, value in shown.items()}
            left = self._clock.remaining(trainer) if trainer.training else None
            if left is not None:  # the whole fit's time left at its pace so far, first: a narrow bar cuts the end
                self._shown = {"eta": duration(left), **self._shown}
        return self._shown if self._shown is not None else get_standard_metrics(trainer)

    def configure_columns(self, trainer: Trainer) -> list:
        """Lightning's columns, never wrapped, with a 12-character bar and no it/s (its 40-character bar and speed
        leave the metrics 12 characters at 80 columns; the samples/s are in the summary when fit ends)."""
        from rich.table import Column

        columns = super().configure_columns(trainer)[:-1]
        columns[1].bar_width = 12
        for column in columns:
            column._table_column = Column(no_wrap=True)  # rich then narrows only the metrics when space runs out
        return columns

    def _init_progress(self, trainer: Trainer) -> None:
        super()._init_progress(trainer)
        if self.progress is not None and self._metric_component is not None:
            metrics = self._metric_component
            self._metric_component = _OneLineMetrics(trainer, metrics._style, metrics._text_delimiter,
                                                     metrics._metrics_format)
            self.progress.columns = (*self.progress.columns[:-1], self._metric_component)

    def _get_train_description(self, current_epoch: int) -> str:
        total = f"/{trainer.max_epochs}" if (trainer := self.trainer).max_epochs and trainer.max_epochs > 0 else ""
        return f"Epoch {current_epoch + 1}{total}".ljust(len(self.validation_description))


class _OneLineMetrics(MetricsTextColumn):
    """The bar's metrics text, cut with an ellipsis at the column's width instead of wrapped onto more lines."""

    def render(self, task: Any) -> Any:
        text = super().render(task)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text


class EpochLines(ProgressBar):
    """One line per epoch with the key metrics, for a stdout that is not a terminal (SLURM logs, CI).

    A redrawn bar written to a file becomes a column of fragments; a line per epoch reads well and greps well.
    Metrics are read once per epoch, never per step.
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = 0.0
        self._clock = FitClock()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._clock.start(trainer)

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
        left = self._clock.remaining(trainer)
        eta = f", eta {duration(left)}" if left else ""  # the whole fit's time left, at its pace so far
        print(f"epoch {trainer.current_epoch + 1}/{total}  step {trainer.global_step}  {'  '.join(shown)}  "
              f"({seconds:.1f}s{eta})", flush=True)


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

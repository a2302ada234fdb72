"""Stochastic weight averaging: the equal average of the weights at the end of each late epoch."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer

from trainkit.callbacks.weight_average import WeightAverage
from trainkit.errors import ConfigError


class SWA(WeightAverage):
    """SWA (`--swa.start 0.75`), off by default; the average is validated, checkpointed and tested like EMA's.

    Built on Lightning's WeightAveraging (equal weights, one update per epoch) instead of its
    StochasticWeightAveraging callback, which replaces the run's LR schedule and allows one optimizer and scheduler
    only; here the task's own schedule keeps running. BatchNorm statistics are averaged with the weights.
    """

    def __init__(self, start: float | None = None, device: str | None = None) -> None:
        """Set up SWA; it stays off while `start` is None.

        Args:
            start: first averaged epoch: a fraction of max_epochs if below 1 (0.75 = the last quarter), else an epoch
                index; None turns SWA off.
            device: keep the average on this device (e.g. cpu); default the model's.
        """
        if start is not None and start < 0:
            raise ConfigError(f"swa.start={start} must be >= 0: a fraction of max_epochs (0.75) or an epoch index")
        self.start = start
        self._start_epoch = 0
        super().__init__(enabled=start is not None, device=device)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.start is not None and self.start < 1:
            if trainer.max_epochs is None or trainer.max_epochs < 0:
                raise ConfigError(f"swa.start={self.start} is a fraction of max_epochs; set --trainer.max_epochs")
            self._start_epoch = int(self.start * trainer.max_epochs)
        elif self.start is not None:
            self._start_epoch = int(self.start)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self._start_epoch

"""Early stopping that is off until a patience is given (`--early_stopping.patience 5`)."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch.callbacks import EarlyStopping


class EarlyStop(EarlyStopping):
    """Lightning's EarlyStopping on the run's monitored metric; inactive while `patience` is None."""

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: Literal["min", "max"] = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            monitor: metric to watch (set once with the top-level --monitor).
            mode: whether lower (min) or higher (max) is better.
            patience: validation checks with no improvement before stopping; None disables early stopping.
            min_delta: smallest change that counts as an improvement.
        """
        super().__init__(monitor=monitor, mode=mode, patience=patience or 0, min_delta=min_delta)
        self.enabled = patience is not None
        """Whether early stopping is asked for; a disabled callback is not handed to the Trainer."""

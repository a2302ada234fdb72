"""What every curve case reads: the training loss before the first non-finite step, its robust trend, the run.

The statistics are robust (medians, not means) so single noisy batches do not trigger anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainkit.doctor.curves import Curves, Series

MIN_TRAIN_POINTS = 8  # fewer logged training losses than this say nothing about a trend
MIN_VAL_POINTS = 3  # validation trends need a start, a middle and an end


@dataclass(frozen=True)
class Hit:
    """Where a case shows on the step axis and the numbers behind it."""

    start: int
    end: int
    evidence: str
    stop_epoch: int | None = None
    """For overfitting: the epoch with the best validation loss."""


@dataclass
class Trend:
    """Robust summary of a training-loss curve: medians of its first, middle and last fifth, and its noise."""

    head: float
    middle: float
    tail: float
    low: float
    low_step: int
    noise: float
    late_noise: float
    level: float

    @classmethod
    def of(cls, train: Series) -> Trend:
        """The trend of a (finite) training-loss series."""
        values = train.values
        k = max(2, len(values) // 5)
        mid = len(values) // 2
        smooth = rolling_median(values, max(3, len(values) // 10))
        residual = values - smooth
        low_index = int(np.argmin(smooth))
        return cls(
            head=float(np.median(values[:k])),
            middle=float(np.median(values[max(0, mid - k // 2): mid + k // 2 + 1])),
            tail=float(np.median(values[-k:])),
            low=float(smooth[low_index]),
            low_step=int(train.steps[low_index]),
            noise=robust_std(residual),
            late_noise=robust_std(residual[mid:]),
            level=float(np.median(np.abs(values))),
        )

    @property
    def drop(self) -> float:
        """Relative decrease from the first to the last fifth (negative when the loss grew)."""
        return (self.head - self.tail) / max(abs(self.head), 1e-12)


@dataclass
class Evidence:
    """One run as the cases see it."""

    curves: Curves
    train: Series
    """Finite training losses before the first non-finite step: what came before a NaN is the story of why."""
    trend: Trend | None
    """None when too few training losses were logged to speak of a trend."""

    @classmethod
    def of(cls, curves: Curves) -> Evidence:
        """Cut the training curve at the first non-finite value and summarise it."""
        train = curves.train.finite()
        bad = nonfinite_steps(curves.train) + nonfinite_steps(curves.val) + list(curves.nonfinite_steps)
        if bad:
            train = before(train, min(bad))
        return cls(curves, train, Trend.of(train) if len(train) >= MIN_TRAIN_POINTS else None)


@dataclass(frozen=True)
class Settings:
    """The run's own numbers that the suggested flags scale (None where the config does not say)."""

    lr: float | None = None
    batch_size: int | None = None
    max_epochs: int | None = None
    weight_decay: float | None = None
    gradient_clip_val: float | None = None

    @classmethod
    def of(cls, config: dict[str, Any]) -> Settings:
        """Read the LR, batch size, epochs, weight decay and gradient clipping from a run's saved config."""
        return cls(config_number(config, "model", "init_args", "optimizer", "lr"),
                   config_number(config, "data", "init_args", "batch_size"),
                   config_number(config, "trainer", "max_epochs"),
                   config_number(config, "model", "init_args", "optimizer", "weight_decay"),
                   config_number(config, "trainer", "gradient_clip_val"))

    def clip(self) -> str:
        """The clipping flag: norm 1.0, or half the run's own threshold when it clips already (advising the
        threshold a run already has is advice that changes nothing)."""
        if self.gradient_clip_val and self.gradient_clip_val <= 1.0:
            return f"{CLIP_FLAG} {self.gradient_clip_val / 2:.3g}"
        return f"{CLIP_FLAG} 1.0"

    def lr_times(self, factor: float, placeholder: str) -> str:
        """The LR flag at `factor` times the run's LR, or with `placeholder` when the LR is unknown."""
        return f"{LR_FLAG} {self.lr * factor:.3g}" if self.lr else f"{LR_FLAG} {placeholder}"

    def batch_times(self, factor: int) -> str:
        """The batch-size flag at `factor` times the run's batch size."""
        return f"{BATCH_FLAG} {self.batch_size * factor}" if self.batch_size else f"{BATCH_FLAG} <{factor}x>"


LR_FLAG = "--model.init_args.optimizer.lr"
BATCH_FLAG = "--data.init_args.batch_size"
CLIP_FLAG = "--trainer.gradient_clip_val"


def nonfinite_steps(series: Series) -> list[int]:
    """The steps at which `series` logged NaN or Inf."""
    return [int(s) for s, v in zip(series.steps, series.values, strict=True) if not np.isfinite(v)]


def robust_std(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation: blind to a few extreme batches."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values)))) if len(values) else 0.0


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median over a centred window at every point."""
    half = window // 2
    return np.asarray([np.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))])


def before(series: Series, step: int) -> Series:
    """The points of `series` logged before `step`."""
    keep = series.steps < step
    return Series(series.name, series.steps[keep], series.values[keep], series.epochs[keep])


def value_at(series: Series, step: int) -> float | None:
    """Median training loss over the logged points nearest before `step`."""
    earlier = series.values[series.steps <= step]
    if len(earlier) == 0:
        return None
    return float(np.median(earlier[-max(3, len(series) // 20):]))


def last_step(curves: Curves) -> int:
    """The last step anything was logged at."""
    ends = [int(s.steps[-1]) for s in (curves.train, curves.val) if len(s)]
    return max(ends + list(curves.nonfinite_steps) or [0])


def config_number(config: dict[str, Any], *keys: str) -> Any:
    """The positive number at `keys` in a saved config, or None."""
    node: Any = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int | float) and not isinstance(node, bool) and node > 0 else None

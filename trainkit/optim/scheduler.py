"""LR schedule chosen by name; its length is derived from the Trainer so users never compute total steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, StepLR

from trainkit.errors import ConfigError


@dataclass
class SchedulerConfig:
    """Which LR schedule to use and how it steps (`--model.scheduler.name onecycle`)."""

    name: str = "cosine"
    """Schedule name; see `known_schedules()`."""
    interval: Literal["step", "epoch"] = "step"
    """Step the schedule after every optimizer step or after every epoch."""
    warmup: float = 0.0
    """Linear warmup length: a count of intervals if >= 1, else a fraction of the whole run."""
    min_lr_ratio: float = 0.0
    """Floor of decaying schedules, as a fraction of the base LR."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra schedule arguments (e.g. {step_size: 30, gamma: 0.1} for step)."""

    def warmup_intervals(self, total: int) -> int:
        """Warmup length in intervals, from a count or a fraction of `total`."""
        return int(self.warmup) if self.warmup >= 1 else int(round(self.warmup * total))

    def build(self, optimizer: torch.optim.Optimizer, total: int) -> dict[str, Any]:
        """Create the scheduler and the Lightning `lr_scheduler` config; `total` counts intervals of the run."""
        factory = _SCHEDULES.get(self.name.lower())
        if factory is None:
            raise ConfigError(f"scheduler '{self.name}' is not known; choose one of: {', '.join(known_schedules())}")
        if not math.isfinite(total) or total <= 0:
            raise ConfigError(
                f"scheduler '{self.name}' needs a finite run length; set --trainer.max_epochs or --trainer.max_steps"
            )
        scheduler = factory(optimizer, self, int(total))
        return {"scheduler": scheduler, "interval": self.interval, "frequency": 1}


def known_schedules() -> list[str]:
    """Names accepted by `SchedulerConfig.name`."""
    return sorted(_SCHEDULES)


def _warmup_then(decay: Callable[[float], float], warmup: int, total: int) -> Callable[[int], float]:
    """LR factor: linear warmup from 0 to 1 over `warmup` intervals, then `decay(progress)` with progress in [0, 1]."""

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / (warmup + 1)
        return decay(min(1.0, (t - warmup) / max(1, total - warmup)))

    return factor


def _constant(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total: int) -> LRScheduler:
    return LambdaLR(optimizer, _warmup_then(lambda p: 1.0, cfg.warmup_intervals(total), total))


def _cosine(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total: int) -> LRScheduler:
    floor = cfg.min_lr_ratio
    decay = lambda p: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    return LambdaLR(optimizer, _warmup_then(decay, cfg.warmup_intervals(total), total))


def _onecycle(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total: int) -> LRScheduler:
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    pct_start = cfg.warmup_intervals(total) / total if cfg.warmup else 0.3
    return OneCycleLR(optimizer, max_lr=max_lrs, total_steps=total, pct_start=pct_start, **cfg.kwargs)


def _step(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total: int) -> LRScheduler:
    kwargs = {"step_size": max(1, total // 3), "gamma": 0.1, **cfg.kwargs}
    return StepLR(optimizer, **kwargs)


_SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, SchedulerConfig, int], LRScheduler]] = {
    "constant": _constant,
    "cosine": _cosine,
    "onecycle": _onecycle,
    "step": _step,
}

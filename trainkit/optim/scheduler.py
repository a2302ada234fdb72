"""LR schedule chosen by name; its length is derived from the Trainer so users never compute total steps."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from trainkit.errors import ConfigError
from trainkit.optim import schedules
from trainkit.optim.onecycle import OneCycle
from trainkit.optim.schedule_lr import ScheduleLR

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

SHAPES: dict[str, Callable[..., float]] = {
    "constant": schedules.constant,
    "step": schedules.step,
    "multistep": schedules.multistep,
    "exponential": schedules.exponential,
    "cosine": schedules.cosine,
    "cosine_restarts": schedules.cosine_restarts,
    "warmup_cosine": schedules.cosine,
    "warmup_linear": schedules.linear,
    "linear": schedules.linear,
    "inverse_sqrt": schedules.inverse_sqrt,
}
"""Closed-form schedules (factor of each group's base LR) by name."""

TORCH_SCHEDULERS: dict[str, type] = {"onecycle": OneCycle, "reduce_on_plateau": ReduceLROnPlateau}
"""Schedules built by torch, with their own keyword arguments."""

DEFAULT_WARMUP = 0.05
"""Warmup of the `warmup_*` schedules when none is given: 5% of the run, a common choice for AdamW recipes."""

_ONECYCLE_PCT_START = 0.3  # torch's default share of the run spent rising to the peak
_ONECYCLE_FIXED = ("optimizer", "max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start")


def known_schedules() -> list[str]:
    """Names accepted by `SchedulerConfig.name`."""
    return sorted([*SHAPES, *TORCH_SCHEDULERS])


@dataclass
class SchedulerConfig:
    """Which LR schedule to use and how it steps (`--model.scheduler.name warmup_cosine --model.scheduler.warmup 0.1`).

    The run length comes from the Trainer (`estimated_stepping_batches`: epochs or max_steps, gradient accumulation
    and the number of devices included), so a schedule always ends where training ends.
    """

    name: str = "cosine"
    """Schedule: constant, step, multistep, exponential, cosine, cosine_restarts, warmup_cosine, warmup_linear,
    linear, inverse_sqrt, onecycle or reduce_on_plateau."""
    interval: Literal["step", "epoch"] | None = None
    """Update the LR after every optimizer step or every epoch; default step (epoch for reduce_on_plateau)."""
    warmup: float | None = None
    """Linear warmup: a count of intervals if >= 1, else a fraction of the run; default 0.05 for warmup_* schedules,
    none for the others. For onecycle it is the rising part (default 0.3)."""
    warmup_start_ratio: float = 0.0
    """LR at the first warmup interval, as a fraction of the base LR."""
    min_lr_ratio: float = 0.0
    """Floor of the decaying schedules, as a fraction of the base LR."""
    monitor: str | None = None
    """reduce_on_plateau: metric to watch; default the run's --monitor (and its --mode)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Schedule arguments, e.g. {step_size: 30, gamma: 0.1} for step, {milestones: [0.5, 0.75]} for multistep,
    {period: 0.25, period_mult: 2} for cosine_restarts, {patience: 3, factor: 0.5} for reduce_on_plateau."""

    def __post_init__(self) -> None:
        if self.name.lower() not in known_schedules():  # fail when the config is read, not after the model is built
            close = difflib.get_close_matches(self.name.lower(), known_schedules(), n=2)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(
                f"scheduler '{self.name}' is not known; {hint}choose one of: {', '.join(known_schedules())}"
            )

    @property
    def step_interval(self) -> Literal["step", "epoch"]:
        """The interval the schedule is stepped at."""
        return self.interval or ("epoch" if self.name.lower() == "reduce_on_plateau" else "step")

    def warmup_intervals(self, total: int) -> int:
        """Warmup length in intervals, from a count or a fraction of `total`."""
        warmup = self.warmup
        if warmup is None:
            warmup = DEFAULT_WARMUP if self.name.lower().startswith("warmup_") else 0.0
        if warmup < 0:
            raise ConfigError(f"scheduler warmup={warmup} is negative; give a count of intervals or a fraction < 1")
        return int(warmup) if warmup >= 1 else int(round(warmup * total))

    def build(self, optimizer: torch.optim.Optimizer, trainer: Trainer) -> dict[str, Any]:
        """The Lightning `lr_scheduler` config for `optimizer`, with the run length taken from `trainer`."""
        name = self.name.lower()
        if name == "reduce_on_plateau":
            return self._plateau(optimizer, trainer)
        total = total_intervals(trainer, self.step_interval)
        if not math.isfinite(total) or total <= 0:
            raise ConfigError(
                f"scheduler '{self.name}' needs a finite run length; set --trainer.max_epochs or --trainer.max_steps"
            )
        return {"scheduler": self.create(optimizer, int(total)), "interval": self.step_interval, "frequency": 1}

    def create(self, optimizer: torch.optim.Optimizer, total: int) -> LRScheduler:
        """The scheduler over `total` intervals (the whole run)."""
        name = self.name.lower()
        warmup = self.warmup_intervals(total)
        if name == "onecycle":
            pct_start = warmup / total if self.warmup else _ONECYCLE_PCT_START
            if total < 4:  # torch's phases need 2 intervals each; a smoke run this short keeps the LR flat
                rank_zero_warn(f"onecycle needs at least 4 {self.step_interval}s; this {total}-{self.step_interval} "
                               "run keeps the LR constant")
                return ScheduleLR(optimizer, schedules.with_warmup(schedules.constant, total, 0, 1.0, 1.0))
            # torch divides by (pct_start * total - 1): keep at least 2 intervals in each phase
            pct_start = min(max(pct_start, 2 / total), 1 - 2 / total)
            kwargs = _checked(OneCycle, name, self.kwargs, fixed=_ONECYCLE_FIXED)
            if self.min_lr_ratio and "final_div_factor" not in kwargs:
                kwargs["final_div_factor"] = 1 / (self.min_lr_ratio * kwargs.get("div_factor", 25.0))
            max_lrs = [group["lr"] for group in optimizer.param_groups]
            return OneCycle(optimizer, max_lr=max_lrs, total_steps=total, pct_start=pct_start, **kwargs)
        shape = SHAPES.get(name)
        if shape is None:
            raise ConfigError(f"scheduler '{self.name}' is not known; choose one of: {', '.join(known_schedules())}")
        if warmup >= total:
            raise ConfigError(f"scheduler warmup of {warmup} {self.step_interval}s is not shorter than the run "
                              f"({total}); lower --model.scheduler.warmup")
        kwargs = _checked(shape, name, self.kwargs, fixed=("s", "n", "floor", "warmup"))
        factor = schedules.with_warmup(shape, total, warmup, self.warmup_start_ratio, self.min_lr_ratio, **kwargs)
        return ScheduleLR(optimizer, factor)

    def _plateau(self, optimizer: torch.optim.Optimizer, trainer: Trainer) -> dict[str, Any]:
        if self.warmup:
            raise ConfigError("reduce_on_plateau has no warmup; remove --model.scheduler.warmup or use warmup_cosine")
        checkpoint = trainer.checkpoint_callback
        monitor = self.monitor or getattr(checkpoint, "monitor", None) or "val/loss"
        kwargs = _checked(ReduceLROnPlateau, "reduce_on_plateau", self.kwargs, fixed=("optimizer", "min_lr"))
        if "mode" not in kwargs and monitor == getattr(checkpoint, "monitor", None):
            kwargs["mode"] = checkpoint.mode
        # A scalar floor (not one per group) lets torch extend it to groups added when a backbone is unfrozen.
        min_lr = self.min_lr_ratio * optimizer.param_groups[0]["lr"]
        scheduler = ReduceLROnPlateau(optimizer, min_lr=min_lr, **kwargs)
        return {"scheduler": scheduler, "interval": self.step_interval, "frequency": 1, "monitor": monitor}


def total_intervals(trainer: Trainer, interval: str) -> float:
    """Length of the run in optimizer steps (accumulation and devices included) or in epochs."""
    steps = trainer.estimated_stepping_batches
    if interval == "step":
        return steps
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        return trainer.max_epochs
    per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
    return math.ceil(steps / max(1, per_epoch))


def _checked(target: Callable[..., Any], name: str, kwargs: dict[str, Any], fixed: tuple[str, ...]) -> dict[str, Any]:
    """`kwargs` if `target` accepts them all, else a ConfigError listing the ones it takes."""
    params = inspect.signature(target).parameters
    skip = {*fixed, "self", "last_epoch"}
    accepted = [p for p, param in params.items() if p not in skip and param.default is not inspect.Parameter.empty]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"scheduler '{name}' does not take {', '.join(unknown)}; its kwargs are: {', '.join(accepted) or 'none'}"
        )
    return dict(kwargs)

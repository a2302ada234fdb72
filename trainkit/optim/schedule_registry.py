"""Every LR schedule by name: what builds it, how it steps and how long it warms up unless the config says.

Adding a schedule is one entry in `SCHEDULES`; the config check, `--help` and the docs table read it from here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from trainkit.errors import ConfigError
from trainkit.optim import schedule_shapes as shapes
from trainkit.optim.lr_schedulers import OneCycle, ScheduleLR

if TYPE_CHECKING:
    from lightning.pytorch import Trainer


@dataclass(frozen=True)
class SchedulePlan:
    """The plain values a schedule is built from, worked out from the config and the run before any builder runs."""

    name: str
    interval: Literal["step", "epoch"]
    total: int | None
    """The run's length in intervals; None for a schedule that needs none (reduce_on_plateau)."""
    warmup: int
    """Warmup in intervals (0 without one)."""
    warmup_given: bool
    """Whether the config set the warmup (else the schedule's default applies)."""
    warmup_start_ratio: float
    min_lr_ratio: float
    kwargs: dict[str, Any]
    """The schedule's own arguments, already checked against what it takes."""
    monitor: str | None = None
    """The metric the config names for reduce_on_plateau, if any."""
    run_monitor: str | None = None
    """The run's --monitor and --mode (its checkpoint callback's), if it has one."""
    run_mode: str | None = None


Builder = Callable[[torch.optim.Optimizer, SchedulePlan], dict[str, Any]]
"""(optimizer, plan) -> the `scheduler` (and `monitor`) entries of Lightning's lr_scheduler config."""

DEFAULT_WARMUP = 0.05
"""Warmup of the `warmup_*` schedules when none is given: 5% of the run, a common choice for AdamW recipes."""


@dataclass(frozen=True)
class Schedule:
    """One LR schedule: what builds it, what its `kwargs` go to, and its defaults."""

    build: Builder
    takes: Callable[..., Any]
    """The function or class that receives `--model.init_args.scheduler.kwargs` (its keyword arguments)."""
    doc: str
    """What it does, for the docs table."""
    fixed: tuple[str, ...] = ("s", "n", "floor", "warmup")
    """Arguments of `takes` that trainkit fills in itself (not settable through kwargs)."""
    interval: Literal["step", "epoch"] = "step"
    """Stepped after every optimizer step or every epoch, unless the config's `interval` says otherwise."""
    warmup: float = 0.0
    """Warmup when the config gives none (a count of intervals if >= 1, else a fraction of the run)."""
    needs_length: bool = True
    """Whether it is laid over the run's length (which must then be finite)."""

    def kwargs_defaults(self) -> dict[str, Any]:
        """The keyword arguments this schedule accepts in `kwargs`, with their defaults."""
        skip = {*self.fixed, "self", "last_epoch"}
        params = inspect.signature(self.takes).parameters
        return {p: param.default for p, param in params.items()
                if p not in skip and param.default is not inspect.Parameter.empty}

    def checked(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` if this schedule accepts them all, else a ConfigError listing the ones it takes."""
        accepted = list(self.kwargs_defaults())
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(f"scheduler '{name}' does not take {', '.join(unknown)}; its kwargs are: "
                              f"{', '.join(accepted) or 'none'}")
        return dict(kwargs)


def run_length(name: str, trainer: Trainer, interval: str) -> int:
    """The run's length in the schedule's intervals; a ConfigError when the run has no end."""
    total = total_intervals(trainer, interval)
    if not math.isfinite(total) or total <= 0:
        raise ConfigError(
            f"scheduler '{name}' needs a finite run length; set --trainer.max_epochs or --trainer.max_steps"
        )
    return int(total)


def total_intervals(trainer: Trainer, interval: str) -> float:
    """Length of the run in optimizer steps (accumulation and devices included) or in epochs."""
    steps = trainer.estimated_stepping_batches
    if interval == "step":
        return steps
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        return trainer.max_epochs
    per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
    return math.ceil(steps / max(1, per_epoch))


def shaped(shape: Callable[..., float], warmup: float = 0.0) -> Schedule:
    """A closed-form shape of `schedule_shapes` after a linear warmup, as a ScheduleLR."""

    def build(optimizer: torch.optim.Optimizer, plan: SchedulePlan) -> dict[str, Any]:
        total = int(plan.total or 0)
        if plan.warmup >= total:
            raise ConfigError(f"scheduler warmup of {plan.warmup} {plan.interval}s is not shorter than the "
                              f"run ({total}); lower --model.init_args.scheduler.warmup")
        factor = shapes.with_warmup(shape, total, plan.warmup, plan.warmup_start_ratio, plan.min_lr_ratio,
                                    **plan.kwargs)
        return {"scheduler": ScheduleLR(optimizer, factor, total=total)}

    doc = " ".join((shape.__doc__ or "").split()).rstrip(".")
    if warmup:
        doc = f"`{shape.__name__}` with {warmup:.0%} warmup by default"
    return Schedule(build, shape, doc, warmup=warmup)


ONECYCLE_WARMUP = 0.3
"""torch's default share of a one-cycle run spent rising to the peak."""


def _onecycle(optimizer: torch.optim.Optimizer, plan: SchedulePlan) -> dict[str, Any]:
    total = int(plan.total or 0)
    # A given warmup counts intervals like every schedule's; torch's own default is an exact fraction.
    pct_start = plan.warmup / total if plan.warmup_given else ONECYCLE_WARMUP
    if total < 4:  # torch's phases need 2 intervals each; a smoke run this short keeps the LR flat
        rank_zero_warn(f"onecycle needs at least 4 {plan.interval}s; this {total}-{plan.interval} "
                       "run keeps the LR constant")
        return {"scheduler": ScheduleLR(optimizer, shapes.with_warmup(shapes.constant, total, 0, 1.0, 1.0))}
    # torch divides by (pct_start * total - 1): keep at least 2 intervals in each phase
    pct_start = min(max(pct_start, 2 / total), 1 - 2 / total)
    kwargs = dict(plan.kwargs)
    if plan.min_lr_ratio and "final_div_factor" not in kwargs:
        kwargs["final_div_factor"] = 1 / (plan.min_lr_ratio * kwargs.get("div_factor", 25.0))
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    return {"scheduler": OneCycle(optimizer, max_lr=max_lrs, total_steps=total, pct_start=pct_start, **kwargs)}


def _plateau(optimizer: torch.optim.Optimizer, plan: SchedulePlan) -> dict[str, Any]:
    if plan.warmup_given:
        raise ConfigError("reduce_on_plateau has no warmup; remove --model.init_args.scheduler.warmup or use "
                          "warmup_cosine")
    monitor = plan.monitor or plan.run_monitor or "val/loss"
    kwargs = dict(plan.kwargs)
    if "mode" not in kwargs and monitor == plan.run_monitor and plan.run_mode is not None:
        kwargs["mode"] = plan.run_mode
    # A scalar floor (not one per group) lets torch extend it to groups added when a backbone is unfrozen.
    min_lr = plan.min_lr_ratio * optimizer.param_groups[0]["lr"]
    return {"scheduler": ReduceLROnPlateau(optimizer, min_lr=min_lr, **kwargs), "monitor": monitor}


SCHEDULES: dict[str, Schedule] = {
    "constant": shaped(shapes.constant),
    "step": shaped(shapes.step),
    "multistep": shaped(shapes.multistep),
    "exponential": shaped(shapes.exponential),
    "cosine": shaped(shapes.cosine),
    "cosine_restarts": shaped(shapes.cosine_restarts),
    "warmup_cosine": shaped(shapes.cosine, warmup=DEFAULT_WARMUP),
    "linear": shaped(shapes.linear),
    "warmup_linear": shaped(shapes.linear, warmup=DEFAULT_WARMUP),
    "polynomial": shaped(shapes.polynomial),
    "inverse_sqrt": shaped(shapes.inverse_sqrt),
    "onecycle": Schedule(_onecycle, OneCycle, "torch's OneCycleLR (LR and momentum cycling); `warmup` is its rising "
                         "part", fixed=("optimizer", "max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start"),
                         warmup=ONECYCLE_WARMUP),
    "reduce_on_plateau": Schedule(_plateau, ReduceLROnPlateau, "torch's ReduceLROnPlateau on `monitor` (default: the "
                                  "run's `--monitor` and `--mode`)", fixed=("optimizer", "min_lr"), interval="epoch",
                                  needs_length=False),
}
"""Schedule name -> its record."""


def known_schedules() -> list[str]:
    """Names accepted by `SchedulerConfig.name`."""
    return sorted(SCHEDULES)


def markdown_table() -> str:
    """The table of schedules in docs/optimization.md."""
    rows = ["| name | LR after warmup (s = interval after warmup, n = intervals after warmup) | kwargs | warmup |",
            "|---|---|---|---|"]
    for name, schedule in SCHEDULES.items():
        kwargs = ", ".join(f"`{k}` ({v:.3g})" if isinstance(v, float) else f"`{k}` ({v})"
                           for k, v in schedule.kwargs_defaults().items())
        rows.append(f"| `{name}` | {schedule.doc} | {kwargs} | {schedule.warmup:g} |")
    return "\n".join(rows)

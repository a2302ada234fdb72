"""SchedulerConfig: which LR schedule a task uses and how it steps; its length is derived from the Trainer so users
never compute total steps. The schedules themselves are the records of `schedule_registry.SCHEDULES`.

The module keeps its name because checkpoints pickle `trainkit.optim.scheduler.SchedulerConfig` in their
hyperparameters: moving the class would make every saved run unloadable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from trainkit.errors import ConfigError, did_you_mean
from trainkit.optim.schedule_registry import SCHEDULES, Schedule, SchedulePlan, known_schedules, run_length

if TYPE_CHECKING:
    from lightning.pytorch import Trainer


@dataclass
class SchedulerConfig:
    """Which LR schedule to use and how it steps (`--model.init_args.scheduler.name warmup_cosine
    --model.init_args.scheduler.warmup 0.1`).

    The run length comes from the Trainer (`estimated_stepping_batches`: epochs or max_steps, gradient accumulation
    and the number of devices included), so a schedule always ends where training ends.
    """

    name: str = "cosine"
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
        if self.name.lower() not in SCHEDULES:  # fail when the config is read, not after the model is built
            raise ConfigError(f"scheduler '{self.name}' is not known; {did_you_mean(self.name.lower(), SCHEDULES, 2)}"
                              f"choose one of: {', '.join(known_schedules())}")

    @property
    def schedule(self) -> Schedule:
        """The registry's record of this schedule."""
        return SCHEDULES[self.name.lower()]

    @property
    def step_interval(self) -> Literal["step", "epoch"]:
        """The interval the schedule is stepped at."""
        return self.interval or self.schedule.interval

    def warmup_intervals(self, total: int) -> int:
        """Warmup length in intervals, from a count or a fraction of `total`."""
        warmup = self.schedule.warmup if self.warmup is None else self.warmup
        if warmup < 0:
            raise ConfigError(f"scheduler warmup={warmup} is negative; give a count of intervals or a fraction < 1")
        return int(warmup) if warmup >= 1 else int(round(warmup * total))

    def plan(self, trainer: Trainer) -> SchedulePlan:
        """The plain values the schedule is built from: the run length from `trainer`, the warmup in intervals, the
        checked kwargs and the run's monitor."""
        schedule, interval = self.schedule, self.step_interval
        total = run_length(self.name, trainer, interval) if schedule.needs_length else None
        checkpoint = trainer.checkpoint_callback
        return SchedulePlan(
            name=self.name, interval=interval, total=total,
            warmup=self.warmup_intervals(total) if total is not None else 0, warmup_given=bool(self.warmup),
            warmup_start_ratio=self.warmup_start_ratio, min_lr_ratio=self.min_lr_ratio,
            kwargs=schedule.checked(self.name, self.kwargs), monitor=self.monitor,
            run_monitor=getattr(checkpoint, "monitor", None), run_mode=getattr(checkpoint, "mode", None),
        )

    def build(self, optimizer: torch.optim.Optimizer, trainer: Trainer) -> dict[str, Any]:
        """The Lightning `lr_scheduler` config for `optimizer`, with the run length taken from `trainer`."""
        return {"interval": self.step_interval, "frequency": 1, **self.schedule.build(optimizer, self.plan(trainer))}


# `--help` text of `name`, from the registry (jsonargparse merges a class docstring's Args with field docstrings).
SchedulerConfig.__doc__ += f"""
    Args:
        name: Schedule: {", ".join(SCHEDULES)}.
"""

"""Optimizers by name (timm's factory) and LR schedules whose length comes from the Trainer."""

from trainkit.optim.optimizer import OptimizerConfig
from trainkit.optim.scheduler import SchedulerConfig

__all__ = ["OptimizerConfig", "SchedulerConfig"]

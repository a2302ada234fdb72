"""Optimizers by name (timm's factory) and LR schedules whose length comes from the Trainer."""

import torch

from trainkit.optim.optimizer import OptimizerConfig
from trainkit.optim.scheduler import SchedulerConfig

# Modules built outside the CLI keep these configs in their hyperparameters; allow them in weights_only loads.
torch.serialization.add_safe_globals([OptimizerConfig, SchedulerConfig])

__all__ = ["OptimizerConfig", "SchedulerConfig"]

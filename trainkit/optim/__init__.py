"""Optimizers by name (timm's factory), param groups, batch-size LR scaling and LR schedules whose length comes from
the Trainer."""

import torch

from trainkit.optim.lr_scaling import effective_batch_size, scale_lr
from trainkit.optim.lr_schedulers import OneCycle, ScheduleLR
from trainkit.optim.optimizer import OptimizerConfig
from trainkit.optim.param_groups import backbone_modules, backbone_parameters, build_param_groups
from trainkit.optim.schedule_registry import SCHEDULES, Schedule, known_schedules
from trainkit.optim.scheduler import SchedulerConfig

# Tasks save these configs in their hyperparameters; allow them in torch.load(weights_only=True) (torch's default,
# used when Lightning resumes a checkpoint), which otherwise refuses every checkpoint that holds them.
torch.serialization.add_safe_globals([OptimizerConfig, SchedulerConfig])

__all__ = [
    "OneCycle",
    "OptimizerConfig",
    "SCHEDULES",
    "Schedule",
    "ScheduleLR",
    "SchedulerConfig",
    "backbone_modules",
    "backbone_parameters",
    "build_param_groups",
    "effective_batch_size",
    "known_schedules",
    "scale_lr",
]

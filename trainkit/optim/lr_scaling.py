"""Batch-size LR scaling: the LR given for `base_batch_size`, scaled to the effective batch size of the run."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from trainkit.errors import ConfigError

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

Scaling = Literal["none", "linear", "sqrt"]


def scale_lr(lr: float, rule: Scaling, batch_size: int, base_batch_size: int) -> float:
    """`lr` x (batch/base) for linear (Goyal et al.), x sqrt(batch/base) for sqrt (adaptive optimizers), else lr."""
    ratio = batch_size / base_batch_size
    return {"none": lr, "linear": lr * ratio, "sqrt": lr * math.sqrt(ratio)}[rule]


def per_device_batch_size(trainer: Trainer) -> int:
    """Samples per device per forward pass: the DataModule's `batch_size`, else the train loader's."""
    size = getattr(trainer.datamodule, "batch_size", None)
    if size is None:
        trainer.estimated_stepping_batches  # noqa: B018  (loads the train dataloader)
        loader = trainer.train_dataloader
        size = getattr(loader, "batch_size", None)
    if not isinstance(size, int):
        raise ConfigError(
            "lr_scaling needs the per-device batch size, but the data has no `batch_size`; give the DataModule a "
            "batch_size attribute or set --model.init_args.optimizer.lr_scaling none"
        )
    return size


def effective_batch_size(trainer: Trainer) -> tuple[int, str]:
    """Samples per optimizer step over all processes, and how it was computed (for the log line)."""
    per_device = per_device_batch_size(trainer)
    devices, nodes, accumulation = trainer.num_devices, trainer.num_nodes, trainer.accumulate_grad_batches
    how = f"{per_device} per device x {devices} devices x {nodes} nodes x {accumulation} accumulation"
    return per_device * devices * nodes * accumulation, how

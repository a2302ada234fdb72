"""L1 / elastic-net penalty on the weights, for every task, as a gradient term."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim import Optimizer

from trainkit.errors import ConfigError


class ElasticNet(Callback):
    """Adds l1 * ||w||_1 + l2 / 2 * ||w||^2 of the weights to the loss (`--elastic_net.l1 1e-5`); off by default.

    The penalty's gradient (l1 * sign(w) + l2 * w) is added to the gradients just before the optimizer step, after
    AMP unscaling and gradient accumulation, which is exactly what adding the term to the loss would do, without
    editing any task. Biases and normalization weights (1-D tensors) are left out, as for weight decay.
    The penalty's value is logged as `train/penalty`.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        """Set the penalty weights; both 0 (the default) turn it off.

        Args:
            l1: weight of the L1 norm of the weights (sparsity).
            l2: weight of half the squared L2 norm (a loss-side L2, unlike the optimizer's decoupled weight decay).
        """
        if l1 < 0 or l2 < 0:
            raise ConfigError(f"elastic_net.l1={l1} and l2={l2} must be >= 0")
        self.l1, self.l2 = l1, l2

    @property
    def enabled(self) -> bool:
        """Whether any penalty is asked for; a disabled callback is not handed to the Trainer."""
        return bool(self.l1 or self.l2)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        weights = [p for p in pl_module.optimized_module().parameters() if p.grad is not None and p.ndim > 1]
        if not weights:
            return
        with torch.no_grad():
            penalty = sum(self.l1 * p.abs().sum() + 0.5 * self.l2 * p.pow(2).sum() for p in weights)
            for p in weights:
                p.grad.add_(self.l1 * p.sign() + self.l2 * p)
        pl_module.log("train/penalty", penalty, on_step=True, on_epoch=True, batch_size=1)

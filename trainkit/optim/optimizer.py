"""Optimizer chosen by name from YAML; timm's factory builds it so no optimizer is rewritten here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from trainkit.errors import ConfigError


@dataclass
class OptimizerConfig:
    """Which optimizer to build and with what arguments (`--model.optimizer.name lion --model.optimizer.lr 1e-4`)."""

    name: str = "adamw"
    """Optimizer name known to timm (sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, lion, lamb, lars, ...)."""
    lr: float = 1e-3
    """Base learning rate."""
    weight_decay: float = 0.05
    """Decoupled (AdamW-style) or L2 weight decay, as the optimizer defines it."""
    momentum: float = 0.9
    """Momentum for SGD-family and RMSprop optimizers."""
    no_decay_bias_norm: bool = True
    """Exclude biases and normalization weights from weight decay."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra optimizer arguments, e.g. {betas: [0.9, 0.95], eps: 1e-8}."""
    implementation: Literal["auto", "fused", "foreach", "loop"] = "auto"
    """fused: one kernel for all parameters (torch Adam/AdamW/SGD/Adagrad); foreach: batched ops; auto: torch picks."""

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        """Create the optimizer over the trainable parameters of `model`."""
        from timm.optim import create_optimizer_v2, list_optimizers

        known = list_optimizers()
        if self.name.lower() not in known:
            raise ConfigError(
                f"optimizer '{self.name}' is not known; choose one of: {', '.join(sorted(known))}"
            )
        impl = {"auto": {}, "fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
        try:
            return create_optimizer_v2(
                model,
                opt=self.name.lower(),
                lr=self.lr,
                weight_decay=self.weight_decay,
                momentum=self.momentum,
                filter_bias_and_bn=self.no_decay_bias_norm,
                **impl[self.implementation],
                **self.kwargs,
            )
        except (TypeError, RuntimeError) as error:
            if self.implementation == "auto":
                raise
            raise ConfigError(
                f"optimizer '{self.name}' has no '{self.implementation}' implementation here ({error}); "
                "set --model.optimizer.implementation auto"
            ) from error

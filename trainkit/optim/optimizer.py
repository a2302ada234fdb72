"""Optimizer chosen by name from YAML; timm's factory builds it so no optimizer is rewritten here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from trainkit.errors import ConfigError, did_you_mean
from trainkit.optim.lr_scaling import Scaling, effective_batch_size, scale_lr
from trainkit.optim.param_groups import BackboneSplit, build_param_groups

if TYPE_CHECKING:
    from lightning.pytorch import Trainer


@dataclass
class OptimizerConfig:
    """Which optimizer to build and with what arguments (`--model.init_args.optimizer.name lion
    --model.init_args.optimizer.lr 1e-4`)."""

    name: str = "adamw"
    """Optimizer name known to timm: sgd, momentum, adam, adamw, rmsprop, adagrad, lion, lamb, lars, ..."""
    lr: float = 1e-3
    """Base learning rate (of the head, and for `base_batch_size` samples when lr_scaling is on)."""
    weight_decay: float = 0.05
    """Decoupled (AdamW-style) or L2 weight decay, as the optimizer defines it."""
    momentum: float = 0.9
    """Momentum for SGD-family and RMSprop optimizers."""
    nesterov: bool | None = None
    """Nesterov momentum for sgd/momentum; None keeps timm's choice (its `sgd` is Nesterov, `momentum` is not)."""
    no_decay_bias_norm: bool = True
    """Exclude biases and normalization weights from weight decay."""
    lr_scaling: Scaling = "none"
    """Scale the LR with the effective batch size (per device x devices x nodes x accumulation): linear or sqrt."""
    base_batch_size: int = 256
    """Batch size that `lr` is given for, when lr_scaling is on."""
    backbone_lr_scale: float = 1.0
    """Discriminative LR: the backbone trains at lr x this (e.g. 0.1), the head at lr."""
    layer_decay: float | None = None
    """Layer-wise LR decay for timm backbones: each layer below the head trains at x this of the one above."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra optimizer arguments, e.g. {betas: [0.9, 0.95], eps: 1e-8}."""
    implementation: Literal["auto", "fused", "foreach", "loop"] = "auto"
    """fused: one kernel for all parameters (torch Adam/AdamW/SGD/Adagrad); foreach: batched ops; auto: torch picks."""

    def __post_init__(self) -> None:
        self.info()  # an unknown name fails when the config is read, not after the model is built

    def info(self) -> Any:
        """timm's description of the named optimizer; a ConfigError listing the known names if there is none."""
        from timm.optim import get_optimizer_info, list_optimizers

        known = list_optimizers()
        if self.name.lower() not in known:
            raise ConfigError(f"optimizer '{self.name}' is not known; {did_you_mean(self.name.lower(), known)}"
                              f"choose one of: {', '.join(sorted(known))}")
        return get_optimizer_info(self.name.lower())

    def scaled_lr(self, trainer: Trainer | None, report: bool = True) -> float:
        """`lr` scaled to the run's effective batch size (reported on rank 0 when `report`), or `lr` when scaling is
        off."""
        if self.lr_scaling == "none" or trainer is None:
            return self.lr
        if self.base_batch_size <= 0:
            raise ConfigError(f"base_batch_size={self.base_batch_size} must be positive")
        batch, how = effective_batch_size(trainer)
        lr = scale_lr(self.lr, self.lr_scaling, batch, self.base_batch_size)
        if not report:
            return lr
        rank_zero_info(
            f"trainkit: lr {self.lr:g} for batch {self.base_batch_size} scaled {self.lr_scaling} to {lr:g} for the "
            f"effective batch {batch} ({how})"
        )
        for logger in trainer.loggers:
            logger.log_metrics({"train/scaled_lr": lr, "train/effective_batch_size": batch}, step=0)
        return lr

    def param_groups(
        self, model: nn.Module, lr: float, split: BackboneSplit | None = None, only: set[int] | None = None
    ) -> list[dict[str, Any]]:
        """Param groups of `model`'s trainable parameters with their LR and weight decay."""
        return build_param_groups(
            model, lr, self.weight_decay, self.no_decay_bias_norm, split, self.backbone_lr_scale, self.layer_decay,
            only,
        )

    def build(
        self, model: nn.Module, lr: float | None = None, split: BackboneSplit | None = None
    ) -> torch.optim.Optimizer:
        """Create the optimizer over the trainable parameters of `model` (at `lr`, default the configured one)."""
        from timm.optim import create_optimizer_v2

        info = self.info()
        lr = self.lr if lr is None else lr
        kwargs = dict(self.kwargs)
        if self.nesterov is not None:
            if not info.has_momentum:
                raise ConfigError(f"nesterov applies to momentum optimizers (sgd, momentum), not '{self.name}'")
            kwargs["nesterov"] = self.nesterov
        elif info.has_momentum and self.momentum == 0 and (info.defaults or {}).get("nesterov"):
            kwargs["nesterov"] = False  # timm's `sgd` is Nesterov, which torch refuses without momentum: plain SGD
        if kwargs.get("nesterov") and self.momentum == 0:
            raise ConfigError("nesterov=true needs momentum > 0, but momentum is 0; set "
                              "--model.init_args.optimizer.momentum 0.9 or --model.init_args.optimizer.nesterov false")
        groups = self.param_groups(model, lr, split)
        if not groups:
            raise ConfigError("the model has no trainable parameters; unfreeze some (check --freeze.epochs)")
        impl = {"auto": {}, "fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
        try:
            return create_optimizer_v2(
                groups, opt=self.name.lower(), lr=lr, weight_decay=self.weight_decay, momentum=self.momentum,
                **impl[self.implementation], **kwargs,
            )
        except (TypeError, RuntimeError) as error:
            if self.implementation == "auto":
                raise
            raise ConfigError(
                f"optimizer '{self.name}' has no '{self.implementation}' implementation here ({error}); "
                "set --model.init_args.optimizer.implementation auto"
            ) from error

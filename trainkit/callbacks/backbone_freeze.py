"""Backbone freezing for fine-tuning: frozen for the first N epochs (or the whole run), then trained at its own LR."""

from __future__ import annotations

import warnings
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from trainkit.errors import ConfigError
from trainkit.optim import backbone_modules, backbone_parameters


class BackboneFreeze(BaseFinetuning):
    """Keep the backbone (`TaskModule.backbone_and_head()`) frozen, its BatchNorm layers in eval, for `epochs`; or
    unfreeze it stage by stage, the last stage first, every `stage_epochs` epochs (progressive unfreezing).

    At the unfreezing epoch its parameters join the optimizer as new param groups with their own LR (the optimizer's
    LR x `backbone_lr_scale`, layer decay included) and follow the schedule from there. Lightning's BaseFinetuning
    stores those groups in checkpoints, so a resumed run gets them back.
    """

    def __init__(self, epochs: int = 0, stage_epochs: int = 0) -> None:
        """Args:
        epochs: epochs the backbone stays frozen; 0 never freezes it, -1 keeps it frozen for the whole run.
        stage_epochs: progressive unfreezing: the head trains alone for this many epochs, then one more stage of the
            backbone (timm's coarse stage groups, e.g. blocks.6, blocks.5, ..., the stem) joins every `stage_epochs`
            epochs; 0 is off. Use it or `epochs`, not both.
        """
        super().__init__()
        if epochs and stage_epochs:
            raise ConfigError(f"--freeze.epochs {epochs} and --freeze.stage_epochs {stage_epochs} are two recipes; "
                              "set one of them")
        if stage_epochs < 0:
            raise ConfigError(f"--freeze.stage_epochs {stage_epochs} must be >= 1 (epochs per stage) or 0 (off)")
        self.epochs, self.stage_epochs = epochs, stage_epochs

    @property
    def enabled(self) -> bool:
        """Whether any freezing is asked for; a disabled callback is not handed to the Trainer."""
        return self.epochs != 0 or self.stage_epochs > 0

    def _frozen_at(self, pl_module: LightningModule, epoch: int) -> list[nn.Parameter]:
        """The backbone parameters that stay frozen during `epoch`."""
        if not self.stage_epochs:
            return _backbone(pl_module)[0] if self.epochs < 0 or epoch < self.epochs else []
        stages = _stages(pl_module)
        still_frozen = max(0, len(stages) - epoch // self.stage_epochs)
        return [p for stage in stages[:still_frozen] for p in stage]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if (self.epochs > 0 or self.stage_epochs) and trainer.world_size > 1:
            # DDP registers the parameters that need gradients when it wraps the model, right after this hook: a
            # backbone unfrozen later would train on each process unsynchronised, and the copies would drift apart.
            flag = (f"--freeze.stage_epochs {self.stage_epochs}" if self.stage_epochs
                    else f"--freeze.epochs {self.epochs}")
            raise ConfigError(
                f"{flag} unfreezes the backbone mid-run, which DDP cannot synchronise; with {trainer.world_size} "
                "processes use --freeze.epochs -1 (frozen throughout) or 0"
            )
        super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:  # a checkpoint of a run without freezing holds none
            super().load_state_dict(state_dict)

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        # Frozen parameter by parameter: BaseFinetuning.freeze works on whole modules, and a timm network holds its
        # head (and, for ViTs, direct parameters such as pos_embed) in the same module as the backbone.
        params, norms = _backbone(pl_module)
        if self.stage_epochs:
            _stages(pl_module)  # a model without stage groups is refused before training starts
        for param in params:
            param.requires_grad_(False)
        for norm in norms:
            norm.eval()  # running statistics stay those of the (pretrained) backbone
        rank_zero_info(f"trainkit: backbone frozen ({sum(p.numel() for p in params):,} parameters)")

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: Optimizer) -> None:
        params, norms = _backbone(pl_module)
        frozen = {id(p) for p in self._frozen_at(pl_module, epoch)}
        for norm in norms:  # BatchNorm of a frozen part keeps its statistics; an unfrozen one trains
            norm_frozen = id(norm.weight) in frozen if norm.weight is not None else bool(frozen)
            norm.train(pl_module.training and not norm_frozen)
        trainable = [p for p in params if id(p) not in frozen]
        # Compared by identity: BaseFinetuning.filter_on_optimizer compares values, which can match by chance.
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if all(p.requires_grad and id(p) in in_optimizer for p in trainable):
            return  # nothing new (or a resumed run whose param groups BaseFinetuning restored)
        for param in trainable:
            param.requires_grad_(True)
        new = {id(p) for p in trainable} - in_optimizer
        if not new:
            return
        config, base_lr = pl_module.optimizer_config, pl_module.base_lr
        groups = config.param_groups(pl_module.optimized_module(), base_lr, pl_module.backbone_and_head(), only=new)
        for group in groups:
            optimizer.add_param_group(group)
        _sync_schedules(pl_module.trainer, optimizer)
        lrs = ", ".join(f"{group['lr']:g}" for group in groups)
        what = "backbone" if not frozen else f"{len(new)} more backbone tensors ({len(frozen)} still frozen)"
        rank_zero_info(f"trainkit: {what} unfrozen at epoch {epoch}; its param groups start at lr {lrs}")


def _sync_schedules(trainer: Trainer, optimizer: Optimizer) -> None:
    """Give new param groups their scheduled LR now, not one optimizer step later (at their full base LR)."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if scheduler.optimizer is optimizer and not isinstance(scheduler, ReduceLROnPlateau):
            with warnings.catch_warnings():  # get_lr() outside step() warns; here it only reads the current position
                warnings.simplefilter("ignore", UserWarning)
                lrs = scheduler.get_lr()
            for group, lr in zip(optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr


def _backbone(pl_module: LightningModule) -> tuple[list[nn.Parameter], list[nn.Module]]:
    """The backbone's parameters and BatchNorm layers; a ConfigError when the model has no backbone/head split."""
    split = pl_module.backbone_and_head() if hasattr(pl_module, "backbone_and_head") else None
    params = backbone_parameters(split)
    if not params:
        raise ConfigError(
            "--freeze.epochs needs a backbone/head split, but this model has none; use a timm backbone or override "
            "TaskModule.backbone_and_head()"
        )
    return params, [m for m in backbone_modules(split) if isinstance(m, _BatchNorm)]


def _stages(pl_module: LightningModule) -> list[list[nn.Parameter]]:
    """The backbone's parameters by timm's coarse stage groups (stem first), its head left out."""
    from timm.models import group_parameters

    split = pl_module.backbone_and_head() if hasattr(pl_module, "backbone_and_head") else None
    network = split[0] if split is not None else None
    if network is None or not hasattr(network, "group_matcher"):
        raise ConfigError("--freeze.stage_epochs needs a timm backbone (it unfreezes timm's stage groups); use "
                          "--freeze.epochs N instead")
    backbone = {id(p) for p in backbone_parameters(split)}
    named = dict(network.named_parameters())
    groups = group_parameters(network, network.group_matcher(coarse=True))
    stages = [[named[n] for n in names if id(named[n]) in backbone] for _, names in sorted(groups.items())]
    return [stage for stage in stages if stage]

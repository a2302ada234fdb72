"""Optimizer param groups: per-group LR (discriminative backbone/head LR, layer-wise decay) and weight decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainkit.errors import ConfigError

BackboneSplit = tuple[nn.Module, nn.Module | None]
"""(network, head inside it): the network's parameters outside the head are the backbone."""


def backbone_parameters(split: BackboneSplit | None) -> list[nn.Parameter]:
    """The backbone's parameters: those of the network that are not in its head."""
    if split is None:
        return []
    network, head = split
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    return [p for p in network.parameters() if id(p) not in head_ids]


def backbone_modules(split: BackboneSplit | None) -> list[nn.Module]:
    """The network's submodules outside its head (where BatchNorm layers are put in eval while frozen)."""
    if split is None:
        return []
    network, head = split
    head_modules = {id(m) for m in head.modules()} if head is not None else set()
    return [m for m in network.modules() if id(m) not in head_modules]


def build_param_groups(
    module: nn.Module,
    lr: float,
    weight_decay: float,
    no_decay_bias_norm: bool = True,
    split: BackboneSplit | None = None,
    backbone_lr_scale: float = 1.0,
    layer_decay: float | None = None,
    only: set[int] | None = None,
) -> list[dict[str, Any]]:
    """Param groups over the trainable parameters of `module` (restricted to the ids in `only` when given).

    A parameter's LR is `lr` x its layer-decay scale (timm's layer map: the head 1, each earlier layer x layer_decay)
    x `backbone_lr_scale` when it belongs to the backbone. Biases, normalization weights and the network's
    `no_weight_decay()` names get no weight decay when `no_decay_bias_norm` (the rule timm applies).
    """
    network = split[0] if split is not None else None
    backbone = {id(p) for p in backbone_parameters(split)}
    if backbone_lr_scale != 1.0 and not backbone:
        raise ConfigError(
            f"backbone_lr_scale={backbone_lr_scale} needs a backbone/head split, but this model has none; use a timm "
            "backbone or override TaskModule.backbone_and_head()"
        )
    scales = _layer_scales(network, layer_decay) if layer_decay is not None else {}
    no_decay = set()
    if network is not None and hasattr(network, "no_weight_decay"):
        names = set(network.no_weight_decay())
        no_decay = {id(p) for n, p in network.named_parameters() if n in names}
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in module.named_parameters():
        if not param.requires_grad or (only is not None and id(param) not in only):
            continue
        scale = scales.get(id(param), 1.0) * (backbone_lr_scale if id(param) in backbone else 1.0)
        exempt = param.ndim <= 1 or name.endswith(".bias") or id(param) in no_decay
        decay = 0.0 if no_decay_bias_norm and exempt else weight_decay
        groups.setdefault((scale, decay), []).append(param)
    # Unscaled groups first: group 0's LR is the one logged as train/lr.
    ordered = sorted(groups.items(), key=lambda item: -item[0][0])
    return [{"params": params, "lr": lr * scale, "weight_decay": decay} for (scale, decay), params in ordered]


def _layer_scales(network: nn.Module | None, layer_decay: float) -> dict[int, float]:
    """Parameter id -> LR scale from timm's layer-wise decay (BEiT-style), which needs a timm model."""
    from timm.optim import param_groups_layer_decay

    if network is None or not hasattr(network, "group_matcher"):
        raise ConfigError(
            f"layer_decay={layer_decay} needs a timm backbone (it uses timm's layer map); remove "
            "--model.init_args.optimizer.layer_decay or use a timm model"
        )
    if not 0 < layer_decay <= 1:
        raise ConfigError(f"layer_decay={layer_decay} must be in (0, 1]; 0.75 is a common choice for fine-tuning")
    groups = param_groups_layer_decay(network, weight_decay=0.0, layer_decay=layer_decay)
    return {id(p): group["lr_scale"] for group in groups for p in group["params"]}

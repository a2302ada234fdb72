"""timm backbones by name, with a clear error for unknown names and for pretrained weights that cannot download."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainkit.errors import ConfigError, did_you_mean


def create_backbone(
    name: str, num_classes: int = 0, in_chans: int = 3, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """Build a timm model; `num_classes=0` returns pooled features instead of logits."""
    import timm

    if not timm.is_model(name):
        hint = did_you_mean(name, timm.list_models()).strip() or "see timm.list_models() for the names"
        if "." in name:  # a dotted name is a class of the user's, which goes by class_path
            hint = f"to use your own network set --model.init_args.backbone.class_path {name} (module on PYTHONPATH)"
        raise ConfigError(f"backbone '{name}' is not a timm model; {hint}")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except (OSError, RuntimeError) as error:
        if not pretrained:
            raise
        raise ConfigError(
            f"could not load pretrained weights for '{name}' ({type(error).__name__}); with no internet, set "
            "--model.init_args.pretrained false or place the weights in the Hugging Face cache (HF_HUB_OFFLINE=1)"
        ) from error

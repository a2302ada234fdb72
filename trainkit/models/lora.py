"""LoRA adapters (peft) injected into any module in place, and merged back into plain weights for export."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from trainkit.errors import ConfigError

if TYPE_CHECKING:
    from peft import LoraModel

ADAPTER = "default"
CHECKPOINT_KEY = "LoRA"
"""Where a checkpoint keeps the LoRA settings it was trained with (the LoRA callback's state)."""
MERGED = "merged"


@dataclass
class LoraSettings:
    """What to adapt and how; mirrors peft's LoraConfig fields of the same names."""

    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] | str = field(default_factory=list)
    train_modules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain values, for checkpoints."""
        return asdict(self)


def apply_lora(module: nn.Module, settings: LoraSettings) -> LoraModel:
    """Replace the `target_modules` layers of `module` by LoRA layers in place; freeze all but adapters and
    `train_modules`. Returns peft's handle, whose `merge_and_unload()` folds the adapters back into `module`."""
    if not settings.target_modules:
        raise ConfigError(
            "LoRA needs target layers: set --lora.target_modules, e.g. [qkv, proj, fc1, fc2] for a ViT or "
            "[conv1, conv2] for a ResNet (names or suffixes of the model's module names)"
        )
    from peft import LoraConfig, LoraModel  # here, not at the top: peft costs `trainkit --help` 0.3 s

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
    )
    try:
        handle = LoraModel(module, config, ADAPTER)
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"LoRA target_modules {settings.target_modules} match no layer ({error})") from error
    names = [name for name, _ in module.named_modules()]
    for pattern in settings.train_modules:
        matched = [n for n in names if n == pattern or n.endswith(f".{pattern}")]
        if not matched:
            raise ConfigError(f"LoRA train_modules: no module named '{pattern}'; pick from the model's module names")
        for name in matched:
            module.get_submodule(name).requires_grad_(True)
    return handle


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def saved_lora_settings(checkpoint: dict) -> LoraSettings | None:
    """The LoRA settings a checkpoint's weights need, or None for plain (or merged) weights."""
    saved = (checkpoint.get("callbacks") or {}).get(CHECKPOINT_KEY)
    return LoraSettings(**saved) if saved and not saved.get(MERGED) else None


def restore_lora(module: nn.Module, checkpoint: dict, fitting: bool = False) -> None:
    """Give `module` the adapters a checkpoint's weights were trained with (none for plain or merged weights), unless
    it has them already, so that the weights fit."""
    settings = saved_lora_settings(checkpoint)
    if settings is None:
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    if any(isinstance(layer, BaseTunerLayer) for layer in module.modules()):
        return
    if fitting:  # the run's new checkpoints would hold adapter weights without the settings that rebuild them
        raise ConfigError(f"this checkpoint was trained with LoRA (r={settings.r}); resume it with the same --lora "
                          "flags (--lora.r, --lora.target_modules, ...)")
    apply_lora(module, settings)


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA adapter of `module` into its base layer and put the plain layer back, in place.

    Per layer with peft's own `merge()`, so it also works on a module rebuilt from a checkpoint, which has no
    LoraModel handle for `merge_and_unload()`.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, layer in list(module.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            layer.merge()
            parent, _, child = name.rpartition(".")
            setattr(module.get_submodule(parent), child, layer.get_base_layer())
    return module

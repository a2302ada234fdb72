"""Weight initialisation for networks trained from scratch: kaiming, xavier, normal(std) or the library default."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from trainkit.errors import ConfigError

Scheme = Literal["default", "kaiming", "xavier", "normal"]
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def init_weights(module: nn.Module, scheme: Scheme, std: float = 0.02) -> int:
    """Re-initialise the conv/linear (and embedding) layers of `module`; returns how many layers were set.

    kaiming: He normal for ReLU nets (fan_out for convs, as torchvision's ResNets); xavier: Glorot uniform;
    normal: N(0, std) (0.02 as GPT-2/BERT). Biases start at 0 and normalization layers at weight 1, bias 0.
    """
    if scheme == "default":
        return 0
    count = 0
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            if scheme == "kaiming":
                mode = "fan_in" if isinstance(layer, nn.Linear) else "fan_out"
                nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.normal_(layer.weight, mean=0.0, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            count += 1
        elif isinstance(layer, nn.Embedding):
            nn.init.normal_(layer.weight, mean=0.0, std=std if scheme == "normal" else 1.0)
            count += 1
        elif isinstance(layer, _NORMS) and getattr(layer, "weight", None) is not None:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
    return count


class WeightInit(Callback):
    """Initialise the trained network's weights before fit (`--weight_init.scheme kaiming`); off by default."""

    def __init__(self, scheme: Scheme = "default", std: float = 0.02) -> None:
        """Args:
        scheme: default keeps the library's initialisation; kaiming, xavier or normal re-initialise it.
        std: standard deviation of the normal scheme.
        """
        if scheme not in ("default", "kaiming", "xavier", "normal"):
            raise ConfigError(f"weight_init scheme '{scheme}' is not known; choose one of: default, kaiming, "
                              "xavier, normal")
        self.scheme, self.std = scheme, std

    @property
    def enabled(self) -> bool:
        """Whether a re-initialisation is asked for; a disabled callback is not handed to the Trainer."""
        return self.scheme != "default"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Only for fit, and before a checkpoint is restored (which then overwrites these weights, as it should).
        if stage != "fit":
            return
        if getattr(pl_module, "hparams", {}).get("pretrained"):
            raise ConfigError(
                f"--weight_init.scheme {self.scheme} would overwrite the pretrained weights; set "
                "--model.init_args.pretrained false or --weight_init.scheme default"
            )
        module = pl_module.optimized_module() if hasattr(pl_module, "optimized_module") else pl_module
        count = init_weights(module, self.scheme, self.std)
        rank_zero_info(f"trainkit: {count} layers initialised with {self.scheme}")

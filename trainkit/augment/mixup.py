"""Mixup and CutMix settings for classification training batches; timm's `Mixup` does the mixing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from trainkit.errors import ConfigError


@dataclass
class MixupConfig:
    """Mix training batches (`--model.init_args.mixup.mixup_alpha 0.8`); validation and test are never mixed."""

    mixup_alpha: float = 0.8
    """Beta(alpha, alpha) of the mixup ratio; 0 turns mixup off (0.8 is timm's ImageNet recipe)."""
    cutmix_alpha: float = 1.0
    """Beta(alpha, alpha) of the CutMix box area; 0 turns CutMix off."""
    prob: float = 1.0
    """Probability that a batch is mixed at all."""
    switch_prob: float = 0.5
    """When both are on, probability of CutMix rather than mixup for a batch."""
    mode: Literal["batch", "pair", "elem"] = "batch"
    """One ratio per batch, per pair of samples, or per sample."""

    def build(self, num_classes: int, label_smoothing: float) -> _EvenMixup:
        """timm's Mixup for `num_classes`, producing label-smoothed soft targets."""
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            raise ConfigError("mixup needs mixup_alpha > 0 or cutmix_alpha > 0; set one, or drop the mixup option")
        if not 0.0 <= self.prob <= 1.0 or not 0.0 <= self.switch_prob <= 1.0:
            raise ConfigError(f"mixup prob={self.prob} and switch_prob={self.switch_prob} must lie in [0, 1]")
        return _EvenMixup(self, num_classes, label_smoothing)


class _EvenMixup:
    """timm's Mixup on the even-sized part of a batch (it mixes sample i with its mirror, so needs an even count)."""

    def __init__(self, cfg: MixupConfig, num_classes: int, label_smoothing: float) -> None:
        from timm.data import Mixup

        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.mixup = Mixup(
            mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, prob=cfg.prob, switch_prob=cfg.switch_prob,
            mode=cfg.mode, label_smoothing=label_smoothing, num_classes=num_classes,
        )

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mixed images and their soft targets (N, num_classes); an odd last sample stays unmixed."""
        from timm.data.mixup import mixup_target

        even = len(x) - len(x) % 2
        if even == 0:
            return x, mixup_target(y, self.num_classes, 1.0, self.label_smoothing)
        # timm mixes in place; clone so the caller's batch (and any cached dataset tensor) is left untouched.
        mixed_x, mixed_y = self.mixup(x[:even].clone(), y[:even])
        if even == len(x):
            return mixed_x, mixed_y
        rest = mixup_target(y[even:], self.num_classes, 1.0, self.label_smoothing)
        return torch.cat([mixed_x, x[even:]]), torch.cat([mixed_y, rest])

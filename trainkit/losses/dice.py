"""Soft Dice loss and its usual companions: cross-entropy + Dice (multi-class) and BCE + Dice (binary).

No installed library offers these with `ignore_index` honoured by both parts and absent classes handled, so they are
written here (segmentation_models_pytorch has them but is not a dependency; MONAI's do not take `ignore_index`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainkit.errors import ConfigError


def _valid_mask(target: Tensor, ignore_index: int | None) -> Tensor:
    """Pixels that count: all of them, or those whose target is not `ignore_index`."""
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def _binary_inputs(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Accept (B, 1, H, W) or (B, H, W) logits and targets for the binary case; return both as (B, H, W)."""
    if logits.ndim == target.ndim + 1 and logits.shape[1] == 1:
        logits = logits.squeeze(1)
    if target.ndim == logits.ndim + 1 and target.shape[1] == 1:
        target = target.squeeze(1)
    if logits.shape != target.shape:
        raise ConfigError(
            f"binary loss got logits of shape {tuple(logits.shape)} for masks of shape {tuple(target.shape)}; "
            "a binary model needs one output channel (num_classes 2 with binary true)"
        )
    return logits, target


class DiceLoss(nn.Module):
    """1 - soft Dice, averaged over the classes present in the batch's target (binary: the foreground only).

    Dice is summed over the whole batch (not per image) so small objects in one image do not dominate. A class absent
    from the target of a batch is left out of the mean: its Dice is 0/0 (or, with smoothing, rewards predicting
    nothing at all), and cross-entropy already penalises false positives for it. With no class present the loss is 0.
    """

    def __init__(self, binary: bool = False, ignore_index: int | None = None, smooth: float = 0.0) -> None:
        """Args:
        binary: logits are one foreground channel (sigmoid) instead of one channel per class (softmax).
        ignore_index: target value of pixels left out of the loss (e.g. 255 for unlabeled borders).
        smooth: added to numerator and denominator; 0 gives the exact Dice.
        """
        super().__init__()
        self.binary, self.ignore_index, self.smooth = binary, ignore_index, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of (B, C, H, W) logits and (B, H, W) class-index targets; binary: (B, 1, H, W) logits, 0/1 masks."""
        if self.binary:
            logits, target = _binary_inputs(logits, target)
            valid = _valid_mask(target, self.ignore_index)
            probs = torch.sigmoid(logits).unsqueeze(1)
            truth = (target == 1).unsqueeze(1)
        else:
            valid = _valid_mask(target, self.ignore_index)
            probs = logits.softmax(dim=1)
            truth = F.one_hot(target.where(valid, 0).long(), logits.shape[1]).movedim(-1, 1)
        valid = valid.unsqueeze(1)
        probs, truth = probs * valid, (truth & valid).to(probs.dtype)
        dims = (0, *range(2, probs.ndim))  # batch and space: one Dice per class
        intersection = (probs * truth).sum(dims)
        cardinality = probs.sum(dims) + truth.sum(dims)
        dice = (2 * intersection + self.smooth) / (cardinality + self.smooth).clamp_min(1e-7)
        present = (truth.sum(dims) > 0).to(dice.dtype)
        # A sum over present classes divided by their count (at least 1) keeps the graph and gives 0, never NaN.
        return ((1 - dice) * present).sum() / present.sum().clamp_min(1)


class CEDiceLoss(nn.Module):
    """Cross-entropy + `dice_weight` x Dice for multi-class masks; `ignore_index` pixels count in neither part."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        ignore_index: int | None = None,
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        smooth: float = 0.0,
    ) -> None:
        """Args:
        dice_weight: weight of the Dice term (0 gives plain cross-entropy).
        ignore_index: target value of pixels left out of both terms.
        class_weights: per-class cross-entropy weights (rare classes up), one per class.
        label_smoothing: cross-entropy label smoothing.
        smooth: Dice smoothing constant.
        """
        super().__init__()
        self.dice_weight, self.ignore_index, self.label_smoothing = dice_weight, ignore_index, label_smoothing
        self.register_buffer("class_weights", None if class_weights is None else torch.tensor(class_weights))
        self.dice = DiceLoss(binary=False, ignore_index=ignore_index, smooth=smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of (B, C, H, W) logits against (B, H, W) class-index targets."""
        valid = _valid_mask(target, self.ignore_index)
        per_pixel = F.cross_entropy(
            logits, target.where(valid, 0).long(), weight=self.class_weights,
            label_smoothing=self.label_smoothing, reduction="none",
        )
        weights = valid.to(per_pixel.dtype)
        if self.class_weights is not None:  # per_pixel is already weighted; the mean divides by the total weight
            weights = weights * self.class_weights[target.where(valid, 0).long()]
        # torch's mean over zero valid pixels is NaN; sum / total weight (floored) is 0 there and the same elsewhere.
        ce = (per_pixel * valid).sum() / weights.sum().clamp_min(1e-7)
        return ce + self.dice_weight * self.dice(logits, target) if self.dice_weight else ce


class BCEDiceLoss(nn.Module):
    """Binary cross-entropy + `dice_weight` x foreground Dice on one logit channel; `ignore_index` pixels skipped."""

    def __init__(
        self, dice_weight: float = 1.0, ignore_index: int | None = None, pos_weight: float | None = None,
        smooth: float = 0.0,
    ) -> None:
        """Args:
        dice_weight: weight of the Dice term (0 gives plain BCE).
        ignore_index: target value of pixels left out of both terms.
        pos_weight: BCE weight of foreground pixels (above 1 when the foreground is rare).
        smooth: Dice smoothing constant.
        """
        super().__init__()
        self.dice_weight, self.ignore_index = dice_weight, ignore_index
        self.register_buffer("pos_weight", None if pos_weight is None else torch.tensor(pos_weight))
        self.dice = DiceLoss(binary=True, ignore_index=ignore_index, smooth=smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of (B, 1, H, W) logits against (B, H, W) or (B, 1, H, W) 0/1 masks."""
        flat_logits, flat_target = _binary_inputs(logits, target)
        valid = _valid_mask(flat_target, self.ignore_index)
        per_pixel = F.binary_cross_entropy_with_logits(
            flat_logits, (flat_target == 1).to(flat_logits.dtype), pos_weight=self.pos_weight, reduction="none"
        )
        weights = valid.to(per_pixel.dtype)
        bce = (per_pixel * weights).sum() / weights.sum().clamp_min(1)
        return bce + self.dice_weight * self.dice(logits, target) if self.dice_weight else bce

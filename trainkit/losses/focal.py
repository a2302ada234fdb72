"""Multi-class focal loss (Lin et al., 2017) for imbalanced classification."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FocalLoss(nn.Module):
    """Softmax focal loss: cross-entropy with each class term scaled by (1 - p)^gamma, so easy examples count less.

    Written here because torchvision's `sigmoid_focal_loss` is binary/multi-label only and timm has none. With
    `gamma=0` it equals `nn.CrossEntropyLoss(weight=alpha, label_smoothing=...)`, including its weighted mean. It
    accepts class indices or probability targets (mixup/cutmix soft labels).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: list[float] | None = None,
        label_smoothing: float = 0.0,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> None:
        """Set the focusing exponent, class weights and smoothing.

        Args:
            gamma: focusing exponent; 0 gives cross-entropy, 2 is the paper's choice.
            alpha: per-class weights (like CrossEntropyLoss's `weight`); `class_weights: balanced` on the task sets it
                from the training set.
            label_smoothing: share of the target mass spread uniformly over the classes (index targets only).
            reduction: mean (weighted by alpha of each target, as cross-entropy does), sum, or none.
        """
        super().__init__()
        self.gamma, self.label_smoothing, self.reduction = gamma, label_smoothing, reduction
        self.register_buffer("weight", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of `logits` (N, C, ...) against class indices (N, ...) or probabilities shaped like `logits`."""
        num_classes = logits.shape[1]
        log_p = F.log_softmax(logits.float(), dim=1)
        hard = not target.is_floating_point()
        if hard:
            soft = F.one_hot(target, num_classes).movedim(-1, 1).float()
            if self.label_smoothing:
                soft = soft * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        else:
            soft = target.float()
        # (1 - p)^gamma per class term; gamma=0 gives exactly cross-entropy's -sum(t * log p).
        modulator = (1 - log_p.exp()).clamp(min=0).pow(self.gamma) if self.gamma else 1.0
        terms = -soft * modulator * log_p
        weight_shape = (1, num_classes) + (1,) * (logits.dim() - 2)
        if self.weight is not None:
            terms = terms * self.weight.view(weight_shape)
        loss = terms.sum(dim=1)
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        if hard and self.weight is not None:
            return loss.sum() / self.weight[target].sum()
        return loss.mean()

"""Knowledge-distillation loss (Hinton et al., 2015): match the teacher's softened outputs, and the labels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class DistillationLoss(nn.Module):
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * hard_loss(student, labels).

    `x_T` is softmax(logits / T). The T^2 keeps the soft term's gradients the same size whatever the temperature.
    Samples labelled -1 (an unlabeled pool) only enter the soft term.
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9, hard_loss: nn.Module | None = None) -> None:
        """Args:
        temperature: softening of both distributions; 1 compares the plain softmax outputs.
        alpha: weight of the teacher term; 1 ignores the labels, 0 is plain supervised training.
        hard_loss: loss on (student logits, labels); cross-entropy by default.
        """
        super().__init__()
        self.temperature, self.alpha = temperature, alpha
        self.hard_loss = hard_loss if hard_loss is not None else nn.CrossEntropyLoss()

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor) -> Tensor:
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(student_logits / t, dim=-1),
            F.log_softmax(teacher_logits.detach() / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)
        labeled = target >= 0
        if not labeled.any():
            return self.alpha * soft
        return self.alpha * soft + (1 - self.alpha) * self.hard_loss(student_logits[labeled], target[labeled])

"""The DPO loss (Rafailov et al. 2023) and the Bradley-Terry reward-model loss.

Written here because TRL, the library that has them, ships them inside its trainers rather than as modules.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class DPOLoss(nn.Module):
    """-log sigmoid(beta * ((log pi(y_w) - log pi(y_l)) - (log ref(y_w) - log ref(y_l)))), with conservative
    label smoothing (the preference label flipped with probability `label_smoothing`)."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.beta, self.label_smoothing = beta, label_smoothing

    def forward(
        self, policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(mean loss, chosen rewards, rejected rewards) from per-sequence log-probabilities; a reward is
        beta * (log pi - log ref), detached."""
        logits = self.beta * ((policy_chosen - policy_rejected) - (ref_chosen - ref_rejected))
        losses = -(1 - self.label_smoothing) * F.logsigmoid(logits) - self.label_smoothing * F.logsigmoid(-logits)
        chosen = self.beta * (policy_chosen - ref_chosen).detach()
        rejected = self.beta * (policy_rejected - ref_rejected).detach()
        return losses.mean(), chosen, rejected


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """-log sigmoid(r_chosen - r_rejected), averaged: the reward model's pairwise preference loss."""
    return -F.logsigmoid(chosen - rejected).mean()

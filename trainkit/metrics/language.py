"""Metrics of language-model tasks that torchmetrics has in no directly usable form."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import MeanMetric, Metric

IGNORE = -100
"""Label of tokens outside the loss (prompt and padding): cross-entropy's and transformers' ignore_index."""


class TokenAccuracy(Metric):
    """Share of next-token predictions (argmax of the logits) equal to the label, over labels that are not IGNORE.

    torchmetrics' MulticlassAccuracy needs the vocabulary size and class-first logits; this takes (N, T, V)
    logits as they come, with the same inputs as torchmetrics' Perplexity.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Count the right predictions among the labelled tokens."""
        counted = labels != IGNORE
        self.correct += ((logits.argmax(dim=-1) == labels) & counted).sum()
        self.total += counted.sum()

    def compute(self) -> Tensor:
        """The accuracy (0 before any labelled token)."""
        return self.correct / self.total.clamp(min=1)


def _won(chosen: Tensor, rejected: Tensor) -> Tensor:
    return (chosen > rejected).float()


def _chosen(chosen: Tensor, rejected: Tensor) -> Tensor:
    return chosen


def _rejected(chosen: Tensor, rejected: Tensor) -> Tensor:
    return rejected


def _margin(chosen: Tensor, rejected: Tensor) -> Tensor:
    return chosen - rejected


class PairMean(MeanMetric):
    """Mean of a function of (chosen, rejected) scores, e.g. how often the chosen answer wins."""

    def __init__(self, of: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.of = of

    def update(self, chosen: Tensor, rejected: Tensor) -> None:  # type: ignore[override]
        """Add one batch of pairs."""
        super().update(self.of(chosen.detach().float(), rejected.detach().float()))


def preference_metrics() -> dict[str, Metric]:
    """reward_acc (chosen scored above rejected), chosen_reward, rejected_reward and margin, from pair scores."""
    return {
        "reward_acc": PairMean(_won), "chosen_reward": PairMean(_chosen),
        "rejected_reward": PairMean(_rejected), "margin": PairMean(_margin),
    }

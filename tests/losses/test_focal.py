"""FocalLoss against PyTorch's cross-entropy and against the focal formula written out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainkit.losses import FocalLoss


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(16, 5) * 3, torch.randint(0, 5, (16,))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("alpha", [None, [1.0, 2.0, 0.5, 3.0, 1.5]])
def test_gamma_zero_equals_cross_entropy(batch, smoothing: float, alpha: list[float] | None) -> None:
    logits, target = batch
    weight = None if alpha is None else torch.tensor(alpha)
    expected = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)(logits, target)
    got = FocalLoss(gamma=0.0, alpha=alpha, label_smoothing=smoothing)(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gamma_zero_equals_cross_entropy_for_soft_targets_and_pixels() -> None:
    logits = torch.randn(4, 3, 6, 6)
    soft = torch.softmax(torch.randn(4, 3, 6, 6), dim=1)
    index = torch.randint(0, 3, (4, 6, 6))
    assert FocalLoss(gamma=0)(logits, soft).item() == pytest.approx(nn.functional.cross_entropy(logits, soft).item())
    assert FocalLoss(gamma=0)(logits, index).item() == pytest.approx(nn.functional.cross_entropy(logits, index).item())


def test_matches_the_focal_formula(batch) -> None:
    logits, target = batch
    alpha = torch.tensor([0.25, 1.0, 1.0, 0.5, 2.0])
    p_t = logits.softmax(dim=1).gather(1, target[:, None]).squeeze(1)
    by_hand = -(alpha[target] * (1 - p_t) ** 2 * p_t.log())
    got = FocalLoss(gamma=2.0, alpha=alpha.tolist(), reduction="none")(logits, target)
    torch.testing.assert_close(got, by_hand)


def test_down_weights_easy_examples() -> None:
    easy, hard = torch.tensor([[6.0, 0.0]]), torch.tensor([[0.5, 0.0]])
    target = torch.tensor([0])
    ce, focal = nn.CrossEntropyLoss(), FocalLoss(gamma=2.0)
    # The well-classified example loses far more of its loss than the uncertain one.
    assert focal(easy, target) / ce(easy, target) < 0.01
    assert focal(hard, target) / ce(hard, target) > 0.1

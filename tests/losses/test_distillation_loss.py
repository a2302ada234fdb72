"""DistillationLoss against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainkit.losses import DistillationLoss


def test_matches_hand_computed_value() -> None:
    # Teacher [2, 0], student [0, 0], T = 2, alpha = 0.5, label 0.
    # p_teacher = softmax([1, 0]) = [e/(e+1), 1/(e+1)] = [0.731059, 0.268941]; p_student = [0.5, 0.5].
    # KL(p_teacher || p_student) = 0.731059 ln(1.462117) + 0.268941 ln(0.537883) = 0.110942; x T^2 = 0.443767.
    # CE = ln 2 = 0.693147.  Loss = 0.5 x 0.443767 + 0.5 x 0.693147 = 0.568457.
    loss = DistillationLoss(temperature=2.0, alpha=0.5)
    value = loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    assert value.item() == pytest.approx(0.568457, abs=1e-5)
    p = math.e / (math.e + 1)
    kl = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    assert value.item() == pytest.approx(0.5 * 4 * kl + 0.5 * math.log(2), rel=1e-6)


def test_unlabeled_samples_enter_only_the_teacher_term() -> None:
    # Add a sample labelled -1 whose student and teacher agree (KL 0): the soft term is averaged over both
    # samples (0.443767 / 2), the cross-entropy over the labelled one only (ln 2).
    loss = DistillationLoss(temperature=2.0, alpha=0.5)
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    value = loss(student, teacher, torch.tensor([0, -1]))
    assert value.item() == pytest.approx(0.5 * 0.443767 / 2 + 0.5 * 0.693147, abs=1e-5)
    only_pool = loss(student, teacher, torch.tensor([-1, -1]))
    assert only_pool.item() == pytest.approx(0.5 * 0.443767 / 2, abs=1e-5)


def test_alpha_zero_is_cross_entropy_and_teacher_gets_no_gradient() -> None:
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1])
    plain = torch.nn.functional.cross_entropy(student, target)
    assert DistillationLoss(alpha=0.0)(student, teacher, target).item() == pytest.approx(plain.item())
    DistillationLoss(alpha=1.0)(student, teacher, target).backward()
    assert student.grad is not None and teacher.grad is None

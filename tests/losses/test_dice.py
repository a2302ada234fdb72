"""Dice, CE + Dice and BCE + Dice against values worked out by hand, including absent classes and ignore_index."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainkit.losses import BCEDiceLoss, CEDiceLoss, DiceLoss

# Four pixels (1 x 4 image), three classes; logits are log-probabilities so softmax gives these rows exactly.
PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
LOGITS = PROBS.log().T.reshape(1, 3, 1, 4).requires_grad_()
TARGET = torch.tensor([[[0, 1, 0, 2]]])
IGNORED = torch.tensor([[[0, 1, 0, 255]]])  # the last pixel unlabeled: class 2 is then absent


def test_dice_all_classes_present() -> None:
    # class 0: I = .7+.5, |P| = .7+.1+.5+.2, |T| = 2
    # class 1: I = .8, |P| = 1.45, |T| = 1;  class 2: I = .6, |P| = 1.05, |T| = 1
    expected = 1 - (2 * 1.2 / (1.5 + 2) + 2 * 0.8 / (1.45 + 1) + 2 * 0.6 / (1.05 + 1)) / 3
    assert DiceLoss()(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_dice_ignore_index_and_absent_class() -> None:
    # Without the last pixel: class 0 I = 1.2, |P| = 1.3, |T| = 2; class 1 I = .8, |P| = 1.25, |T| = 1; class 2 absent.
    expected = 1 - (2 * 1.2 / 3.3 + 2 * 0.8 / 2.25) / 2
    loss = DiceLoss(ignore_index=255)(LOGITS, IGNORED)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(LOGITS.grad).all()
    LOGITS.grad = None


def test_dice_smoothing() -> None:
    expected = 1 - ((2 * 1.2 + 1) / (3.3 + 1) + (2 * 0.8 + 1) / (2.25 + 1)) / 2
    assert DiceLoss(ignore_index=255, smooth=1.0)(LOGITS, IGNORED).item() == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_gives_zero() -> None:
    target = torch.tensor([[[0, 1], [2, 1]]])
    logits = F.one_hot(target, 3).movedim(-1, 1).float() * 50
    assert DiceLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert CEDiceLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_everything_ignored_is_zero_not_nan() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    for loss_fn in (DiceLoss(ignore_index=255), CEDiceLoss(ignore_index=255)):
        loss = loss_fn(logits, target)
        loss.backward()
        assert loss.item() == 0.0
        assert torch.isfinite(logits.grad).all()


def test_ce_dice_hand_value() -> None:
    ce = (-math.log(0.7) - math.log(0.8) - math.log(0.5)) / 3
    dice = 1 - (2 * 1.2 / 3.3 + 2 * 0.8 / 2.25) / 2
    loss = CEDiceLoss(dice_weight=0.5, ignore_index=255)(LOGITS, IGNORED)
    assert loss.item() == pytest.approx(ce + 0.5 * dice, rel=1e-5)


@pytest.mark.parametrize("ignore_index", [None, 255, 0])
def test_ce_part_matches_torch(ignore_index: int | None) -> None:
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, :2] = 255 if ignore_index == 255 else target[0, :2]
    weights = [1.0, 2.0, 0.5, 3.0]
    ours = CEDiceLoss(dice_weight=0.0, ignore_index=ignore_index, class_weights=weights, label_smoothing=0.1)
    kwargs = {} if ignore_index is None else {"ignore_index": ignore_index}
    theirs = F.cross_entropy(logits, target, weight=torch.tensor(weights), label_smoothing=0.1, **kwargs)
    assert ours(logits, target).item() == pytest.approx(theirs.item(), rel=1e-5)


def test_bce_dice_hand_value() -> None:
    probs = torch.tensor([0.9, 0.2, 0.6, 0.3])
    logits = torch.logit(probs).reshape(1, 1, 1, 4)
    target = torch.tensor([[[1, 0, 1, 255]]])
    bce = (-math.log(0.9) - math.log(0.8) - math.log(0.6)) / 3
    dice = 1 - 2 * 1.5 / (1.7 + 2)  # I = .9+.6, |P| = .9+.2+.6, |T| = 2
    loss = BCEDiceLoss(dice_weight=2.0, ignore_index=255)(logits, target)
    assert loss.item() == pytest.approx(bce + 2.0 * dice, rel=1e-5)


def test_binary_empty_foreground() -> None:
    logits = torch.tensor([[[[-2.0, 1.0]]]], requires_grad=True)
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    loss = BCEDiceLoss()(logits, target)
    expected_bce = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(1.0))).item() / 2  # -log(1 - sigmoid(x))
    assert loss.item() == pytest.approx(expected_bce, rel=1e-5)  # no foreground: the Dice term is 0
    loss.backward()
    assert torch.isfinite(logits.grad).all()

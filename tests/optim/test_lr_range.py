"""suggest_lr on synthetic range-test curves: a clean valley, a hump before the descent, a flat curve."""

from __future__ import annotations

import numpy as np
import pytest

from trainkit.optim.lr_range import suggest_lr

LOG_LR = np.linspace(-6, 0, 100)  # 1e-6 to 1, as `trainkit lr-find` searches by default
LRS = 10**LOG_LR


def _descent(centre: float, width: float = 0.4, top: float = 2.3, bottom: float = 0.3) -> np.ndarray:
    """A loss falling from `top` to `bottom` around log10(lr) = `centre`, steepest at `centre`."""
    return bottom + (top - bottom) / (1 + np.exp((LOG_LR - centre) / width))


def _diverging_after(log_lr: float) -> np.ndarray:
    return np.where(LOG_LR > log_lr, 5 * (LOG_LR - log_lr) ** 2, 0.0)


def test_a_clean_valley_suggests_its_steepest_point_and_a_range_around_it() -> None:
    noise = np.random.default_rng(0).normal(0, 0.02, len(LOG_LR))
    found = suggest_lr(LRS, _descent(-3.0) + _diverging_after(-1.5) + noise)
    assert found.lr is not None and found.note == ""
    assert np.log10(found.lr) == pytest.approx(-3.0, abs=0.25)
    assert found.low < found.lr < found.high < found.minimum
    # Half-steepness points of the logistic curve: centre ± width * ln(3 + 2 sqrt 2) ≈ ± 0.7 decades.
    assert np.log10(found.low) == pytest.approx(-3.7, abs=0.3) and np.log10(found.high) == pytest.approx(-2.3, abs=0.3)


def test_a_hump_before_the_descent_is_never_suggested() -> None:
    hump = 0.8 * np.exp(-(((LOG_LR + 4.5) / 0.15) ** 2))  # rises above the start, then falls back steeply
    losses = _descent(-2.5) + hump + _diverging_after(-1.0)
    found = suggest_lr(LRS, losses)
    assert found.lr is not None
    assert np.log10(found.lr) == pytest.approx(-2.5, abs=0.25)
    assert np.log10(found.low) > -4.2  # the safe range starts after the hump, where the loss is below its start
    # The far side of the hump is steeper than the real descent: steepest-anywhere picks the hump.
    steepest_anywhere = LOG_LR[np.argmin(np.gradient(losses, LOG_LR))]
    assert -5 < steepest_anywhere < -4


def test_a_flat_curve_gives_no_clear_answer() -> None:
    flat = 2.3 + np.random.default_rng(0).normal(0, 0.01, len(LOG_LR))
    found = suggest_lr(LRS, flat)
    assert found.lr is None and "hardly fell" in found.note and "--max_lr" in found.note


def test_a_descent_still_going_at_the_largest_lr_gives_no_clear_answer() -> None:
    # The diabetes range test ended so: its steepest point (0.355) trained to r2 0.463 against the config's 0.550.
    found = suggest_lr(LRS, _descent(-1.0, width=0.5))
    assert found.lr is None and "still falling at the largest LR tried" in found.note and "--max_lr" in found.note


def test_too_few_points_or_a_short_dip_give_no_clear_answer() -> None:
    assert "raise --num_training" in suggest_lr(LRS[:5], _descent(-3.0)[:5]).note
    dip = 2.3 - 0.5 * np.exp(-(((LOG_LR + 3) / 0.03) ** 2)) + _diverging_after(-2.9)
    found = suggest_lr(LRS, dip)
    assert found.lr is None and "short dip" in found.note

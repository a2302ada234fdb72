"""Reading an LR range test: the LR to suggest and the range that is safe, or a plain "no clear answer".

Lightning's own suggestion is the steepest gradient anywhere on the curve (against linear LR), which can land on a
hump before the real descent. As fastai's valley and steep heuristics do, this looks only at the stable descent
into the loss minimum: points below the starting loss where the loss keeps falling, slopes measured over a window
of points against log LR so one noisy batch cannot decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 10  # fewer finite losses than this cannot show a descent and its minimum
MIN_DROP = 0.05  # the best loss must be 5% below the starting one, or the range never reached a useful LR
BUMP_SHARE = 0.1  # bumps in the descent smaller than this share of its whole fall are batch noise, not a hump
STEEP_SHARE = 0.5  # the safe range: where the loss falls at least half as fast as at its steepest


@dataclass(frozen=True)
class LRSuggestion:
    """What a range test's curve says: a suggested LR and its safe range, or why it says nothing clear."""

    lr: float | None
    low: float | None = None
    high: float | None = None
    minimum: float | None = None
    """The LR at the loss minimum (the largest LR that still lowered the loss)."""
    note: str = ""
    """Why there is no clear answer (`lr` is None), or a caveat about the answer."""


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> LRSuggestion:
    """The steepest point of the stable descent before the loss minimum, and where the descent stays steep."""
    lr_values, loss_values = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(loss_values) & (lr_values > 0)
    lr_values, loss_values = lr_values[keep], loss_values[keep]
    # Lightning's smoothed loss climbs over its first steps from the first batch's loss at LRs too small to matter
    # (its own suggestion skips the first 10 points): the curve starts where that climb ends.
    skip = 0
    while skip + 1 < len(loss_values) // 3 and loss_values[skip + 1] >= loss_values[skip]:
        skip += 1
    lr_values, loss_values = lr_values[skip:], loss_values[skip:]
    n = len(loss_values)
    if n < MIN_POINTS:
        return LRSuggestion(None, note=f"only {n} finite losses were recorded; raise --num_training")
    low_index = int(np.argmin(loss_values))
    best = float(loss_values[low_index])
    typical = float(np.median(loss_values[: low_index + 1]))
    drop = (typical - best) / max(abs(typical), 1e-12)
    if drop < MIN_DROP:
        return LRSuggestion(None, note=f"the loss hardly fell over the range (typically {typical:.4g}, best "
                                       f"{best:.4g}, {100 * drop:.1f}% lower); widen --min_lr/--max_lr or raise "
                                       "--num_training")
    window = max(3, n // 10)
    # Walk back from the minimum up the descent, across bumps smaller than a tenth of the whole fall, to where the
    # loss was highest: a hump's top, or the plateau the descent left (its last point near the peak).
    tolerance = BUMP_SHARE * (float(np.max(loss_values[: low_index + 1])) - best)
    top, peak = low_index, best
    while top > 0 and loss_values[top - 1] > peak - tolerance:
        top -= 1
        if loss_values[top] > peak:
            peak = float(loss_values[top])
    top = top + int(np.nonzero(loss_values[top: low_index + 1] >= peak - tolerance)[0][-1])
    # Only the part below the lowest loss just before the top counts: a hump's far side is steep but no descent to
    # train on.
    before = loss_values[max(0, top - window): top]
    level = float(np.min(before)) if len(before) else np.inf
    below = np.nonzero(loss_values[top: low_index + 1] < level)[0]
    first = top + int(below[0]) if len(below) else low_index
    if low_index - first + 1 < max(3, n // 20):
        return LRSuggestion(None, minimum=float(lr_values[low_index]),
                            note=f"the loss fell only in a short dip ({low_index - first + 1} points) before its "
                                 "minimum; raise --num_training or narrow --min_lr/--max_lr around it")
    # Slopes again within the descent alone, so a hump's far side just before it cannot leak in through the window.
    slope = np.full(n, np.inf)  # outside the descent: never steep
    slope[first: low_index + 1] = _windowed_slope(np.log10(lr_values[first: low_index + 1]),
                                                  loss_values[first: low_index + 1], window)
    steepest = first + int(np.argmin(slope[first: low_index + 1]))
    steep = slope <= STEEP_SHARE * slope[steepest]
    low, high = steepest, steepest
    while low > first and steep[low - 1]:
        low -= 1
    while high < low_index and steep[high + 1]:
        high += 1
    if low_index >= n - 2:  # no turn seen: the steepest point of an unfinished descent is no safe guess
        return LRSuggestion(None, note=f"the loss was still falling at the largest LR tried "
                                       f"({float(lr_values[-1]):.3g}); raise --max_lr to see where it turns")
    return LRSuggestion(float(lr_values[steepest]), float(lr_values[low]), float(lr_values[high]),
                        float(lr_values[low_index]))


def _windowed_slope(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Least-squares slope of y against x over a centred window at every point."""
    half = window // 2
    slopes = np.empty(len(x))
    for i in range(len(x)):
        xs, ys = x[max(0, i - half): i + half + 1], y[max(0, i - half): i + half + 1]
        centred = xs - xs.mean()
        slopes[i] = float(centred @ (ys - ys.mean()) / max(float(centred @ centred), 1e-12))
    return slopes

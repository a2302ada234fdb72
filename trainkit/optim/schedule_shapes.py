"""LR schedule shapes as closed-form factors of the base LR, each with its formula, plus linear warmup.

Closed forms rather than torch's chainable schedulers: a factor composes with warmup for every shape, applies to
every param group's own base LR (discriminative LRs), and lets groups join later (unfreezing) at the right point.
Each shape is `shape(s, n, floor, **kwargs)`: the factor at interval `s` of the `n` intervals after warmup; its
keyword arguments are the `--model.init_args.scheduler.kwargs` it accepts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable


def _count(value: float, n: int) -> int:
    """A length given as a count of intervals (>= 1) or as a fraction of `n` (< 1)."""
    return max(1, int(value) if value >= 1 else int(round(value * n)))


def _progress(s: int, n: int) -> float:
    """0 at the first interval after warmup, 1 at the last one (so the floor is reached on the last step)."""
    return min(1.0, s / max(1, n - 1))


def constant(s: int, n: int, floor: float) -> float:
    """1."""
    return 1.0


def step(s: int, n: int, floor: float, step_size: float = 1 / 3, gamma: float = 0.1) -> float:
    """gamma ** (s // step_size), as torch's StepLR; step_size is a count or a fraction of the run."""
    return max(floor, gamma ** (s // _count(step_size, n)))


def multistep(s: int, n: int, floor: float, milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """gamma ** (milestones passed), as torch's MultiStepLR; each milestone is a count or a fraction of the run."""
    passed = sum(s >= _count(m, n) for m in milestones)
    return max(floor, gamma**passed)


def exponential(s: int, n: int, floor: float, gamma: float | None = None) -> float:
    """gamma ** s, as torch's ExponentialLR; by default gamma reaches max(floor, 0.01) on the last step."""
    if gamma is None:
        gamma = max(floor, 0.01) ** (1 / max(1, n - 1))
    return max(floor, gamma**s)


def cosine(s: int, n: int, floor: float) -> float:
    """floor + (1 - floor) * (1 + cos(pi * s / (n - 1))) / 2: from 1 down to the floor on the last step."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * _progress(s, n)))


def cosine_restarts(s: int, n: int, floor: float, period: float = 0.25, period_mult: float = 1.0) -> float:
    """SGDR, as torch's CosineAnnealingWarmRestarts: cosine cycles of `period` (count or fraction), each
    `period_mult` times longer than the last, restarting at 1."""
    length, start = _count(period, n), 0
    while s >= start + length:
        start, length = start + length, max(1, int(length * period_mult))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (s - start) / length))


def linear(s: int, n: int, floor: float) -> float:
    """1 - (1 - floor) * s / (n - 1): straight down to the floor on the last step."""
    return 1 - (1 - floor) * _progress(s, n)


def polynomial(s: int, n: int, floor: float, power: float = 1.0) -> float:
    """floor + (1 - floor) * (1 - s / (n - 1)) ** power: decay to the floor, as transformers' polynomial schedule."""
    return floor + (1 - floor) * (1 - _progress(s, n)) ** power


def inverse_sqrt(s: int, n: int, floor: float, warmup: int = 0, timescale: float | None = None) -> float:
    """1 / sqrt(1 + s / timescale), timescale = the warmup length by default: fairseq's sqrt(warmup / t)."""
    return max(floor, 1 / math.sqrt(1 + s / max(1.0, timescale or warmup)))


def with_warmup(
    shape: Callable[..., float], total: int, warmup: int, start: float, floor: float, **kwargs: object
) -> Callable[[int], float]:
    """Factor at interval t: linear from `start` to 1 over `warmup` intervals (1 exactly at t = warmup), then
    `shape` over the remaining intervals."""
    decay = max(1, total - warmup)
    if "warmup" in inspect.signature(shape).parameters:  # shapes that scale with the warmup (inverse_sqrt)
        kwargs = {"warmup": warmup, **kwargs}

    def factor(t: int) -> float:
        if t < warmup:
            return start + (1 - start) * t / warmup
        return shape(t - warmup, decay, floor, **kwargs)

    return factor

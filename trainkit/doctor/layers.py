"""Layer-health detectors: dead or saturated blocks, and gradient norms that vanish or explode with depth.

They read the `layers/<block>/<stat>` series that `--layer_health.every_n_steps` logs; a run without them has none.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from trainkit.doctor.curves import Curves, Series
from trainkit.doctor.evidence import Evidence, Hit

DEAD_FRAC = 0.9  # nine in ten ReLU units silent on a whole batch: the block passes almost nothing on
SATURATED_FRAC = 0.9  # nine in ten sigmoid/tanh outputs on their flat tails, where the gradient is near 0
DEPTH_RATIO = 1e3  # three orders of magnitude between the first and the last block's gradient norm
_NUMBER = re.compile(r"(\d+)")


def block_order(curves: Curves, name: str) -> tuple[float, list[Any]]:
    """Sort key of a block: its forward position as logged (`layers/<block>/order`), else its name with numbers
    compared as numbers (`blocks.2` before `blocks.10`)."""
    order = curves.layers.get(f"layers/{name}/order")
    position = float(order.values[-1]) if order is not None and len(order) else np.inf
    return position, [int(part) if part.isdigit() else part for part in _NUMBER.split(name)]


def layer_series(curves: Curves, stat: str) -> dict[str, Series]:
    """Block -> the finite series of `stat` (grad_norm, act_std, dead_frac, ...), blocks in forward order."""
    found = {key.split("/")[1]: series.finite() for key, series in curves.layers.items()
             if key.count("/") == 2 and key.rsplit("/", 1)[1] == stat}
    return {name: found[name] for name in sorted(found, key=lambda name: block_order(curves, name))
            if len(found[name])}


def _late_median(series: Series) -> float:
    """Median over the second half of the logged points: what the block settled into, not its first steps."""
    return float(np.median(series.values[len(series) // 2:]))


def _sustained(e: Evidence, stat: str, threshold: float, what: str) -> Hit | None:
    blocks = {name: s for name, s in layer_series(e.curves, stat).items() if len(s) >= 2
              and _late_median(s) > threshold}
    if not blocks:
        return None
    parts = [f"{name}: {100 * _late_median(s):.0f}% {what}" for name, s in blocks.items()]
    first = next(iter(blocks.values()))
    start = int(first.steps[int(np.argmax(first.values > threshold))])
    more = f" (and {len(parts) - 3} more blocks)" if len(parts) > 3 else ""
    return Hit(start, int(first.steps[-1]), "; ".join(parts[:3]) + more + f", median of the last "
               f"{len(first) - len(first) // 2} logged steps")


def dead(e: Evidence) -> Hit | None:
    """A block whose ReLU units are almost all zero on every sample, for the second half of the logged steps."""
    return _sustained(e, "dead_frac", DEAD_FRAC, "of its ReLU units dead")


def saturated(e: Evidence) -> Hit | None:
    """A block whose sigmoid/tanh outputs sit almost all on their flat tails."""
    return _sustained(e, "sat_frac", SATURATED_FRAC, "of its sigmoid/tanh outputs saturated")


def _depth_ratio(e: Evidence) -> tuple[float, str, Hit] | None:
    """(first block's over last block's median gradient norm, the evidence line's numbers, where)."""
    blocks = layer_series(e.curves, "grad_norm")
    if len(blocks) < 2:
        return None
    (first, early), (last, late) = next(iter(blocks.items())), list(blocks.items())[-1]
    low, high = float(np.median(early.values)), float(np.median(late.values))
    if high <= 0 and low <= 0:
        return None  # no gradient anywhere: a flat run, not a depth profile
    ratio = low / high if high > 0 else np.inf
    numbers = (f"first block {first}: {low:.2g}, last block {last}: {high:.2g} (median gradient norm of "
               f"{len(early)} logged steps)")
    return ratio, numbers, Hit(int(early.steps[0]), int(early.steps[-1]), "")


def vanishing(e: Evidence) -> Hit | None:
    """The first block's gradient norm orders of magnitude below the last block's."""
    found = _depth_ratio(e)
    if found is None or found[0] * DEPTH_RATIO >= 1:
        return None
    ratio, numbers, hit = found
    times = f"{1 / ratio:.2g}x" if ratio > 0 else "to exactly 0"
    return Hit(hit.start, hit.end, f"gradient norm falls {times} from the last block to the first; {numbers}")


def exploding(e: Evidence) -> Hit | None:
    """The first block's gradient norm orders of magnitude above the last block's."""
    found = _depth_ratio(e)
    if found is None or not DEPTH_RATIO < found[0] < np.inf:
        return None
    ratio, numbers, hit = found
    return Hit(hit.start, hit.end, f"gradient norm grows {ratio:.2g}x from the last block to the first; {numbers}")

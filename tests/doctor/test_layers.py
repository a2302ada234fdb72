"""The layer-health detectors on logged per-block series: saturated blocks and gradients exploding with depth (the
dead and vanishing cases are trained for real in tests/callbacks/test_layer_health.py), and the blocks' order."""

from __future__ import annotations

import numpy as np

from trainkit.doctor.curves import Curves, Series
from trainkit.doctor.diagnosis import diagnose
from trainkit.doctor.layers import layer_series

STEPS = np.arange(10.0)


def _curves(layers: dict[str, float]) -> Curves:
    """A run whose only curves are constant `layers/<block>/<stat>` series over 10 logged steps."""
    series = {key: Series(key, STEPS, np.full(10, value), np.zeros(10)) for key, value in layers.items()}
    return Curves(Series("train/loss"), Series("val/loss"), Series("val/loss"), "min", Series("train/lr"),
                  Series("train/grad_norm"), [], {}, layers=series)


def test_blocks_sort_by_their_logged_forward_order_else_by_name() -> None:
    logged = _curves({"layers/patch_embed/grad_norm": 1.0, "layers/patch_embed/order": 0,
                      "layers/blocks.10/grad_norm": 1.0, "layers/blocks.10/order": 2,
                      "layers/blocks.2/grad_norm": 1.0, "layers/blocks.2/order": 1})
    assert list(layer_series(logged, "grad_norm")) == ["patch_embed", "blocks.2", "blocks.10"]
    unordered = _curves({"layers/blocks.10/grad_norm": 1.0, "layers/blocks.2/grad_norm": 1.0})
    assert list(layer_series(unordered, "grad_norm")) == ["blocks.2", "blocks.10"]


def test_a_saturated_block_and_exploding_gradients_are_named_with_their_fixes() -> None:
    curves = _curves({"layers/b.0/grad_norm": 50.0, "layers/b.1/grad_norm": 1.0, "layers/b.2/grad_norm": 0.01,
                      "layers/b.0/sat_frac": 0.1, "layers/b.1/sat_frac": 0.97, "layers/b.2/sat_frac": 0.2})
    found = {finding.case: finding for finding in diagnose(curves)}
    assert set(found) == {"saturated_layer", "exploding_grads"}
    assert found["saturated_layer"].evidence.startswith("b.1: 97% of its sigmoid/tanh outputs saturated")
    assert "grows 5e+03x" in found["exploding_grads"].evidence
    assert "--trainer.gradient_clip_val 1.0" in found["exploding_grads"].flags


def test_healthy_blocks_give_no_layer_finding() -> None:
    curves = _curves({"layers/b.0/grad_norm": 0.1, "layers/b.1/grad_norm": 0.4, "layers/b.0/dead_frac": 0.3,
                      "layers/b.1/sat_frac": 0.5})
    assert diagnose(curves) == []

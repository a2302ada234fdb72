"""Batch-size LR scaling on the effective batch size (per device x devices x nodes x accumulation)."""

from __future__ import annotations

import logging
import math

import pytest

from tests.optim._tiny import TinyTask, fit
from trainkit.optim import OptimizerConfig, SchedulerConfig, scale_lr


def test_scaling_rules() -> None:
    assert scale_lr(0.1, "linear", 512, 256) == pytest.approx(0.2)
    assert scale_lr(0.1, "sqrt", 1024, 256) == pytest.approx(0.2)
    assert scale_lr(0.1, "none", 1024, 256) == 0.1


@pytest.mark.parametrize(("rule", "factor"), [("linear", 2.0), ("sqrt", math.sqrt(2.0)), ("none", 1.0)])
def test_effective_batch_counts_accumulation(rule: str, factor: float, caplog: pytest.LogCaptureFixture) -> None:
    """Batches of 4 accumulated 4 times are an effective batch of 16: twice the base batch of 8."""
    caplog.set_level(logging.INFO)
    optimizer = OptimizerConfig(name="adamw", lr=0.01, lr_scaling=rule, base_batch_size=8)
    model = TinyTask(optimizer, SchedulerConfig(name="constant"))
    lrs = fit(model, epochs=1, accumulate_grad_batches=4).first_group
    assert lrs == pytest.approx([0.01 * factor] * 3)
    assert model.base_lr == pytest.approx(0.01 * factor)
    if rule != "none":
        assert "effective batch 16 (4 per device x 1 devices x 1 nodes x 4 accumulation)" in caplog.text

"""Gradient norm, clipping fraction and update ratio are logged with the run at the logging steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_runs import train_tiny
from trainkit.doctor.curves import read_metrics


@pytest.mark.parametrize(("clip", "fraction"), [(1e-6, 1.0), (1e6, 0.0)])
def test_clip_fraction_grad_norm_and_update_ratio(tmp_path: Path, clip: float, fraction: float) -> None:
    run = train_tiny(tmp_path, epochs=1, log_every=5, gradient_clip_val=clip)
    metrics = read_metrics(run.run_dir)
    assert metrics["train/clip_frac"].values.tolist() == [fraction] * 8  # 40 steps, logged every 5
    assert metrics["train/grad_norm"].steps.tolist() == list(range(4, 40, 5))
    assert (metrics["train/grad_norm"].values > 0).all()
    ratio = metrics["train/update_ratio"].values
    assert len(ratio) == 8 and (ratio > 0).all()
    if clip < 1:  # a clipped-to-nothing gradient barely moves AdamW (its update is scale-free but tiny at norm 1e-6)
        assert ratio.max() < 1.0
    # the loss logged by Lightning lands on the same steps, so the curves share one axis
    assert set(metrics["train/grad_norm"].steps) <= set(metrics["train/loss_step"].steps)


def test_per_module_norms(tmp_path: Path) -> None:
    from trainkit.callbacks import TrainingMonitor

    run = train_tiny(tmp_path, epochs=1, log_every=10, callbacks=[TrainingMonitor(per_module=True)])
    metrics = read_metrics(run.run_dir)
    assert len(metrics["train/grad_norm.net"].values) == 4
    assert metrics["train/grad_norm.net"].values == pytest.approx(metrics["train/grad_norm"].values, rel=1e-5)

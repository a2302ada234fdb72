"""The schedule and batch-size LR scaling with 2 DDP processes on CPU (gloo), through the real `trainkit fit`."""

from __future__ import annotations

import pytest

from tests.ddp_fits import ddp_fits
from tests.metrics_csv import read_rows


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_fits")
def test_warmup_cosine_and_lr_scaling_on_two_processes() -> None:
    out, output = ddp_fits()  # `trainkit fit` of tests/ddp_fits.py's SCHEDULE flags on 2 processes
    assert "effective batch 128 (64 per device x 2 devices x 1 nodes x 1 accumulation)" in output

    rows = read_rows(out / "schedule/runs/digits/ddp/metrics.csv")
    lr = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    # 1258 training images / 64 per batch = 20 batches, split over 2 processes: 10 optimizer steps
    assert sorted(lr) == list(range(10))
    peak = 0.003 * 128 / 64  # linear scaling to the effective batch of 2 x 64
    assert lr[0] == 0.0  # warmup start
    assert lr[3] == pytest.approx(peak)  # peak at the end of the 3 warmup steps
    assert lr[9] == pytest.approx(0.1 * peak)  # floor at the last optimizer step
    scaled = [float(r["train/scaled_lr"]) for r in rows if r.get("train/scaled_lr")]
    assert scaled == [pytest.approx(peak)]

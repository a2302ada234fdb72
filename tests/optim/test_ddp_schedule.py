"""The schedule and batch-size LR scaling with 2 DDP processes on CPU (gloo), through the real `trainkit fit`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DIGITS_CONFIG, DOCTOR_OFF, REPO
from tests.metrics_csv import read_rows


@pytest.mark.slow
def test_warmup_cosine_and_lr_scaling_on_two_processes(workdir: Path) -> None:
    args = [
        sys.executable, "-m", "trainkit", "fit", "--config", str(DIGITS_CONFIG),
        "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
        "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--test_after_fit", "false", *DOCTOR_OFF,
        "--model.init_args.optimizer.lr", "0.003", "--model.init_args.optimizer.lr_scaling", "linear",
        "--model.init_args.optimizer.base_batch_size", "64",
        "--model.init_args.scheduler.name", "warmup_cosine", "--model.init_args.scheduler.warmup", "3",
        "--model.init_args.scheduler.min_lr_ratio", "0.1",
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "effective batch 128 (64 per device x 2 devices x 1 nodes x 1 accumulation)" in done.stdout + done.stderr

    rows = read_rows(workdir / "runs/digits/version_0/metrics.csv")
    lr = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    # 1258 training images / 64 per batch = 20 batches, split over 2 processes: 10 optimizer steps
    assert sorted(lr) == list(range(10))
    peak = 0.003 * 128 / 64  # linear scaling to the effective batch of 2 x 64
    assert lr[0] == 0.0  # warmup start
    assert lr[3] == pytest.approx(peak)  # peak at the end of the 3 warmup steps
    assert lr[9] == pytest.approx(0.1 * peak)  # floor at the last optimizer step
    scaled = [float(r["train/scaled_lr"]) for r in rows if r.get("train/scaled_lr")]
    assert scaled == [pytest.approx(peak)]

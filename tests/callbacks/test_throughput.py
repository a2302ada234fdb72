"""Throughput is logged on logging steps, its figures agree with each other, and a slow loader shows as data wait."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tests.tiny_runs import train_tiny
from trainkit.callbacks import Throughput
from trainkit.doctor.curves import read_metrics
from trainkit.doctor.report import examine
from trainkit.reports.progress import PROGRESS_FILE
from trainkit.tasks import ClassificationModule

KEYS = ("train/samples_per_sec", "train/step_time", "train/data_wait_frac", "train/peak_mem_gb", "train/mfu")


def test_throughput_is_logged_and_consistent(tmp_path: Path) -> None:
    throughput = Throughput()
    # 1,024 of the training digits in batches of 32: every batch full, so samples/s x s/step is the batch size.
    run = train_tiny(tmp_path, epochs=1, train_subset=1024, log_every=5, callbacks=[throughput])
    metrics = read_metrics(run.run_dir)
    for key in KEYS:
        assert len(metrics[key]) == 32 // 5, key  # one value per logging step, none between them
    product = metrics["train/samples_per_sec"].values * metrics["train/step_time"].values
    assert np.allclose(product, 32, rtol=0.1)
    assert (metrics["train/data_wait_frac"].values >= 0).all() and (metrics["train/data_wait_frac"].values < 1).all()
    assert (metrics["train/peak_mem_gb"].values > 0.01).all()  # CPU: the process's peak RSS, tens of MB at least
    # The MLP 64-64-10: forward 2 x (64x64 + 64x10) multiply-adds a sample; backward twice that, less the first
    # layer's input gradient (the images need none).
    assert throughput.flops_per_sample == 3 * 2 * (64 * 64 + 64 * 10) - 2 * 64 * 64
    mfu = metrics["train/mfu"].values
    assert np.allclose(mfu, throughput.flops_per_sample * metrics["train/samples_per_sec"].values
                       / throughput.peak_flops) and (mfu > 0).all() and (mfu < 1).all()
    line, total = throughput.summary()
    assert "samples/s" in line and "ms/step" in line and "data wait" in line
    assert total.startswith("  total time") and "in training steps" in total
    assert json.loads((run.run_dir / PROGRESS_FILE).read_text())["step"] == 30  # written at the last logging step


class _SlowImages(Dataset):
    """Random 8x8 images whose loading takes 50 ms each, as an overloaded disk or heavy augmentation would."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        time.sleep(0.05)
        return torch.randn(64), index % 10


class _SlowData(LightningDataModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(_SlowImages(), batch_size=4)


def test_a_slow_loader_is_input_bound_and_the_doctor_says_so(tmp_path: Path) -> None:
    model = ClassificationModule(backbone=nn.Linear(64, 10), num_classes=10)
    logger = CSVLogger(tmp_path, name="run", version=0)
    Trainer(max_epochs=1, logger=logger, log_every_n_steps=2, callbacks=[Throughput()], accelerator="cpu",
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False).fit(model, _SlowData())
    wait = read_metrics(logger.log_dir)["train/data_wait_frac"].values
    assert len(wait) == 3 and (wait > 0.5).all()
    report = examine(logger.log_dir)
    [finding] = [f for f in report.findings if f.case == "input_bound"]
    # No saved config to check a flag against: the advice is given in words (trainkit/doctor/advice.py).
    assert "more DataLoader workers" in " ".join(finding.flags)

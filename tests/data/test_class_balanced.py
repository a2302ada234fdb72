"""ClassBalancedDataModule over the real digits: balanced training batches, everything else passed through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from trainkit.data import ClassBalancedDataModule, DigitsDataModule


def test_digits_train_batches_are_balanced_and_eval_is_untouched() -> None:
    inner = DigitsDataModule(batch_size=50, image_size=8)
    data = ClassBalancedDataModule(inner, classes_per_batch=5, samples_per_class=4)
    data.setup("fit")
    assert data.num_classes == 10 and data.in_chans == 1  # read through from the wrapped module
    loader = data.train_dataloader()
    n_train = len(inner.splits["train"])
    assert len(loader) == n_train // 20
    for x, y in loader:
        counts = torch.bincount(y, minlength=10)
        assert x.shape == (20, 1, 8, 8)
        assert int((counts > 0).sum()) == 5 and set(counts[counts > 0].tolist()) == {4}
    val = data.val_dataloader()
    assert val.batch_size == 50 and len(val.dataset) == len(inner.splits["val"])


DDP_SCRIPT = """
from collections import Counter
from lightning.pytorch import Callback, Trainer, seed_everything
from trainkit.data import ClassBalancedDataModule, DigitsDataModule
from trainkit.tasks import MetricLearningModule

class Report(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        s = trainer.train_dataloader.sampler
        counts = sorted(Counter(batch[1].tolist()).values())
        with open(f"rank{trainer.global_rank}.txt", "a") as out:  # a file per rank: stdout lines can interleave
            out.write(f"batch {trainer.global_rank} {type(s).__name__} {s.rank} {s.num_replicas} {counts}\\n")

if __name__ == "__main__":
    seed_everything(0)
    data = ClassBalancedDataModule(DigitsDataModule(image_size=16), classes_per_batch=4, samples_per_class=3)
    model = MetricLearningModule(backbone="test_resnet", in_chans=1, embedding_dim=8)
    Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=2, limit_val_batches=0,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[Report()]).fit(model, datamodule=data)
"""


@pytest.mark.slow
def test_two_ddp_processes_keep_the_sampler_and_its_balance(tmp_path: Path) -> None:
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = "".join(path.read_text() for path in sorted(tmp_path.glob("rank*.txt")))
    lines = [line.split(maxsplit=5) for line in reports.splitlines() if line.startswith("batch ")]
    assert sorted(line[1] for line in lines) == ["0", "0", "1", "1"]  # 2 processes x 2 steps
    for _, rank, kind, sampler_rank, world, counts in lines:
        # Lightning kept our sampler (no DistributedSampler swapped in), sharded for this rank.
        assert (kind, sampler_rank, world, counts) == ("ClassBalancedSampler", rank, "2", "[3, 3, 3, 3]")

"""ClassBalancedDataModule over the real digits: balanced training batches, everything else passed through."""

from __future__ import annotations

import pytest
import torch

from tests.ddp_fits import ddp_fits
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


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_fits")
def test_two_ddp_processes_keep_the_sampler_and_its_balance() -> None:
    out, _ = ddp_fits()  # a metric-learning fit on ClassBalancedDataModule(4 classes x 3), 2 steps, 2 processes
    reports = "".join(path.read_text() for path in sorted((out / "class_balanced").glob("rank*.txt")))
    lines = [line.split(maxsplit=5) for line in reports.splitlines() if line.startswith("batch ")]
    assert sorted(line[1] for line in lines) == ["0", "0", "1", "1"]  # 2 processes x 2 steps
    for _, rank, kind, sampler_rank, world, counts in lines:
        # Lightning kept our sampler (no DistributedSampler swapped in), sharded for this rank.
        assert (kind, sampler_rank, world, counts) == ("ClassBalancedSampler", rank, "2", "[3, 3, 3, 3]")

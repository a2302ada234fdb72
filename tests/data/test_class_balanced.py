"""ClassBalancedDataModule over the real digits: balanced training batches, everything else passed through."""

from __future__ import annotations

import torch

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

"""The embedded digits: real data, a deterministic stratified split, the requested image size and channels."""

from __future__ import annotations

import torch

from trainkit.data import DigitsDataModule


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    a, b = DigitsDataModule(image_size=None), DigitsDataModule(image_size=None)
    a.setup(), b.setup()
    sizes = {name: len(ds) for name, ds in a.splits.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 359 and sizes["val"] == 179
    for name in ("train", "val", "test"):
        assert torch.equal(a.splits[name].images, b.splits[name].images)
    train_rows = {tuple(x.flatten().tolist()) for x in a.splits["train"].images}
    test_rows = [tuple(x.flatten().tolist()) for x in a.splits["test"].images]
    assert sum(row in train_rows for row in test_rows) < 5, "test images are not train images (a few digits repeat)"
    counts = torch.bincount(a.splits["test"].labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38, "every class keeps its share of the test split"


def test_resize_channels_and_normalisation() -> None:
    dm = DigitsDataModule(image_size=32, in_chans=3, batch_size=16)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.shape == (16,)
    train = dm.splits["train"].images
    assert abs(train.mean().item()) < 1e-4 and abs(train.std().item() - 1) < 1e-3
    assert torch.equal(x[:, 0], x[:, 1]), "grayscale repeated over channels"


def test_train_transform_only_touches_training_images() -> None:
    flip = torch.nn.Identity()
    flip.forward = lambda image: image.flip(-1)  # type: ignore[method-assign]
    plain, augmented = DigitsDataModule(image_size=8), DigitsDataModule(image_size=8, train_transform=flip)
    plain.setup(), augmented.setup()
    assert torch.equal(augmented.splits["train"][0][0], plain.splits["train"][0][0].flip(-1))
    assert torch.equal(augmented.splits["test"][0][0], plain.splits["test"][0][0])

"""Random labelled images held in memory: the same tensors feed trainkit and the hand-written loop."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


def random_images(count: int, shape: tuple[int, ...], num_classes: int, seed: int = 0) -> TensorDataset:
    """`count` standard-normal images of `shape` with uniform labels, reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, *shape, generator=generator)
    return TensorDataset(images, torch.randint(0, num_classes, (count,), generator=generator))


def loader(dataset: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
    """The one DataLoader set-up both sides use: in-process (no workers), as for any in-memory data."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, drop_last=shuffle)


class RandomImagesDataModule(LightningDataModule):
    """Train and val splits of random images; `num_classes` is checked against the model like real data."""

    def __init__(self, train_size: int = 8192, val_size: int = 256, shape: tuple[int, ...] = (3, 32, 32),
                 num_classes: int = 10, batch_size: int = 64) -> None:
        super().__init__()
        self.num_classes, self.batch_size = num_classes, batch_size
        self.train = random_images(train_size, tuple(shape), num_classes, seed=0)
        self.val = random_images(val_size, tuple(shape), num_classes, seed=1)

    def train_dataloader(self) -> DataLoader:
        return loader(self.train, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return loader(self.val, self.batch_size, shuffle=False)

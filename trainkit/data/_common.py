"""Pieces the DataModules share: loader defaults per machine, a deterministic split, an in-memory dataset."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


def default_num_workers() -> int:
    """Loader workers from the CPU count: leave one core for the training process, cap at 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, drop_last: bool = False,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A DataLoader with the right defaults: pinned memory and persistent workers only where they pay."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        collate_fn=collate_fn,
    )


def stratified_split(labels: Sequence[int] | Tensor, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split indices into len(fractions)+1 parts, keeping class proportions; the same seed gives the same split."""
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)].tolist()
        start = 0
        for part, fraction in zip(parts, fractions, strict=False):
            count = int(round(fraction * len(idx)))
            part.extend(idx[start : start + count])
            start += count
        parts[-1].extend(idx[start:])
    return [sorted(part) for part in parts]


class TensorImageDataset(Dataset):
    """Images and labels held in memory, with an optional per-sample transform (augmentation)."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def image_transform(
    image_size: int | None, mean: Sequence[float], std: Sequence[float], augment: Callable | None = None
) -> Callable:
    """PIL/array image -> normalized float tensor, with `augment` applied to the [0, 1] tensor before normalizing."""
    from torchvision.transforms import v2

    steps: list[Callable] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if image_size is not None:
        steps.append(v2.Resize((image_size, image_size), antialias=True))
    if augment is not None:
        steps.append(augment)
    steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


class SplitDataModule(LightningDataModule):
    """A DataModule whose `setup` fills `self.splits` (train/val/test datasets); its loaders follow from that."""

    splits: dict[str, Dataset]
    batch_size: int
    num_workers: int

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.splits["train"], self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return make_loader(self.splits["val"], self.batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return make_loader(self.splits["test"], self.batch_size, False, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

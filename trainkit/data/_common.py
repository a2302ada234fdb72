"""Pieces the DataModules share: loader defaults per machine, a deterministic split, an in-memory dataset."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from trainkit.errors import ConfigError


def default_num_workers() -> int:
    """Loader workers per training process from the CPUs it may use (a SLURM or taskset allotment, shared by one
    process per local GPU): leave one core for the training process, cap at 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = torch.cuda.device_count() if torch.cuda.is_available() else 1
    return max(0, min(8, cpus // max(processes, 1) - 1))


def loader_options(
    num_workers: int | None = None, pin_memory: bool | None = None, persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
) -> dict[str, Any]:
    """DataLoader keyword arguments, each chosen from the machine unless given: workers from the CPUs, pinned memory
    where there is a GPU to copy to, persistent workers whenever there are workers (no restart each epoch), and 4
    batches prefetched per worker on a GPU (its steps are short) or 2 (PyTorch's default) on CPU."""
    workers = default_num_workers() if num_workers is None else num_workers
    cuda = torch.cuda.is_available()
    return {
        "num_workers": workers,
        "pin_memory": cuda if pin_memory is None else pin_memory,
        "persistent_workers": workers > 0 and persistent_workers is not False,
        "prefetch_factor": (prefetch_factor or (4 if cuda else 2)) if workers > 0 else None,
    }


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, drop_last: bool = False,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A DataLoader with the right defaults: pinned memory and persistent workers only where they pay."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, collate_fn=collate_fn,
                      **loader_options(num_workers))


def seeded_split(
    count: int, fractions: Sequence[float], seed: int, what: str = "samples", fix: str = "lower the val/test fractions"
) -> list[list[int]]:
    """Indices 0..count-1 shuffled by `seed` and cut into one part per fraction, then the rest (e.g. val, test,
    train); the same seed gives the same split.

    Each part holds round(fraction * count) items, and at least one when its fraction is above 0 (a requested split is
    never silently empty); a split that leaves nothing to train on is refused in one line naming `what` was split
    and the `fix`.
    """
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = [max(1, round(f * count)) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= count:
        held = " and ".join(str(size) for size in sizes)
        raise ConfigError(f"{count} {what} are too few to hold out {held} and still train on any; {fix}")
    parts, start = [], 0
    for size in sizes:
        parts.append(order[start:start + size])
        start += size
    return [*parts, order[start:]]


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

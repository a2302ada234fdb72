"""torchvision sets read real files from `root` and never download unless asked."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from trainkit.data import TorchvisionDataModule
from trainkit.errors import ConfigError


def _write_idx(path: Path, array: torch.Tensor) -> None:
    """Write MNIST's IDX format (big-endian dims, unsigned bytes), the files torchvision reads."""
    header = struct.pack(">HBB", 0, 0x08, array.dim()) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") if path.suffix == ".gz" else path.open("wb") as file:
        file.write(header + array.to(torch.uint8).numpy().tobytes())


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 50), ("t10k", 20)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", torch.randint(0, 255, (n, 28, 28), generator=g))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", torch.arange(n) % 10)
    return tmp_path


def test_reads_mnist_files_and_splits_train(tiny_mnist: Path) -> None:
    dm = TorchvisionDataModule("MNIST", root=str(tiny_mnist), val_fraction=0.2, batch_size=8, num_workers=0)
    dm.setup()
    assert (len(dm.splits["train"]), len(dm.splits["val"]), len(dm.splits["test"])) == (40, 10, 20)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and dm.num_classes == 10 and dm.in_chans == 1


def test_missing_files_without_download_is_one_clear_error(tmp_path: Path) -> None:
    dm = TorchvisionDataModule("CIFAR10", root=str(tmp_path), download=False, num_workers=0)
    with pytest.raises(ConfigError, match=r"CIFAR10 is not under .*--data.download true"):
        dm.setup()

"""MNIST, FashionMNIST, CIFAR10/100 through torchvision: downloads only when asked (`--data.download true`)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.utils.data import Subset

from trainkit.data._common import SplitDataModule, default_num_workers, image_transform, seeded_split
from trainkit.errors import ConfigError

# name -> (classes, channels, mean, std); the statistics are the usual published per-channel values.
_SETS: dict[str, tuple[int, int, tuple[float, ...], tuple[float, ...]]] = {
    "MNIST": (10, 1, (0.1307,), (0.3081,)),
    "FashionMNIST": (10, 1, (0.2860,), (0.3530,)),
    "CIFAR10": (10, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR100": (100, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class TorchvisionDataModule(SplitDataModule):
    """A torchvision classification set read from `root`; the train split is cut into train/val by `val_fraction`."""

    def __init__(
        self,
        name: Literal["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"] = "MNIST",
        root: str = "data",
        download: bool = False,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        image_size: int | None = None,
        num_workers: int | None = None,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            name: which dataset.
            root: folder holding (or receiving) the dataset files.
            download: fetch the files if absent (needs internet); off by default so runs never download by surprise.
            batch_size: samples per batch.
            val_fraction: share of the official train split held out for validation.
            split_seed: seed of that split.
            image_size: resize images to this side; None keeps the native size.
            num_workers: loader workers; None picks from the CPU count.
            train_transform: augmentation on the [0, 1] training tensor before normalization.
        """
        super().__init__()
        # logger=False: config.yaml records these, and merged hparams would clash with the model's in_chans
        self.save_hyperparameters(ignore=["train_transform"], logger=False)
        self.name, self.root, self.download = name, root, download
        self.num_classes, self.in_chans, mean, std = _SETS[name]
        self.batch_size, self.val_fraction, self.split_seed = batch_size, val_fraction, split_seed
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.train_tf = image_transform(image_size, mean, std, train_transform)
        self.eval_tf = image_transform(image_size, mean, std)
        self.splits: dict[str, torch.utils.data.Dataset] = {}

    def _load(self, train: bool, transform, download: bool = False):  # noqa: ANN001, ANN202
        import torchvision.datasets as datasets

        dataset_class = getattr(datasets, self.name)
        try:
            return dataset_class(self.root, train=train, transform=transform, download=download)
        except RuntimeError as error:
            raise ConfigError(
                f"{self.name} is not under '{self.root}' ({error}); pass --data.download true (needs internet) "
                "or set --data.root to the folder that holds it"
            ) from error
        except OSError as error:
            raise ConfigError(
                f"could not download {self.name} to '{self.root}' ({error}); check the network"
            ) from error

    def prepare_data(self) -> None:
        if self.download:
            self._load(True, None, download=True)
            self._load(False, None, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train_aug, train_plain = self._load(True, self.train_tf), self._load(True, self.eval_tf)
        val, train = seeded_split(len(train_plain), [self.val_fraction], self.split_seed, "training images")
        self.splits = {
            "train": Subset(train_aug, train),
            "val": Subset(train_plain, val),
            "test": self._load(False, self.eval_tf),
        }

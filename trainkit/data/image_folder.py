"""Images in one folder per class: `root/train`, `root/val`, `root/test`, or one folder split by fractions."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from trainkit.data._common import SplitDataModule, default_num_workers, image_transform, stratified_split
from trainkit.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image(path: str, mode: str) -> Any:
    """The image at `path` in `mode`; a ConfigError naming the file when it cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for truncated, corrupt or foreign files
        raise ConfigError(f"image {path} cannot be read ({type(error).__name__}: {error}); remove or replace "
                          "it") from error


class ImageFolderDataModule(SplitDataModule):
    """Class-per-folder images (torchvision ImageFolder); classes are the sorted folder names."""

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        image_size: int = 224,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        grayscale: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        num_workers: int | None = None,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            root: a folder with `train/` (and optionally `val/`, `test/`) class folders, or class folders directly.
            batch_size: samples per batch.
            image_size: square side images are resized to.
            val_fraction: share held out for validation when there is no `val/` folder.
            test_fraction: share held out for test when there is no `test/` folder.
            split_seed: seed of those splits.
            grayscale: read images as one channel.
            mean: per-channel normalization mean.
            std: per-channel normalization std.
            num_workers: loader workers; None picks from the CPU count.
            train_transform: augmentation on the [0, 1] training tensor before normalization.
        """
        super().__init__()
        # logger=False: config.yaml records these, and merged hparams would clash with the model's in_chans
        self.save_hyperparameters(ignore=["train_transform"], logger=False)
        self.root = Path(root)
        self.batch_size, self.image_size = batch_size, image_size
        self.fractions, self.split_seed = (val_fraction, test_fraction), split_seed
        self.grayscale = grayscale
        self.in_chans = 1 if grayscale else 3
        if grayscale and len(mean) == 3:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.train_tf = image_transform(image_size, mean, std, train_transform)
        self.eval_tf = image_transform(image_size, mean, std)
        self.num_classes: int | None = None
        self.classes: list[str] = []
        self.splits: dict[str, Dataset] = {}

    def _folder(self, path: Path, transform) -> Dataset:  # noqa: ANN001
        from torchvision.datasets import ImageFolder

        try:
            return ImageFolder(str(path), transform=transform, loader=functools.partial(
                read_image, mode="L" if self.grayscale else "RGB"))
        except (FileNotFoundError, RuntimeError) as error:
            raise ConfigError(
                f"no class folders with images under '{path}' ({error}); expected {path}/<class>/img.png"
            ) from error

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.root.is_dir():
            raise ConfigError(
                f"image folder '{self.root}' does not exist; set --data.init_args.root to a folder of class folders"
            )
        base = self.root / "train" if (self.root / "train").is_dir() else self.root
        train_aug, train_plain = self._folder(base, self.train_tf), self._folder(base, self.eval_tf)
        self.classes = train_plain.classes
        self.num_classes = len(self.classes)
        targets = torch.tensor(train_plain.targets)
        own_folder = {name: base != self.root and (self.root / name).is_dir() for name in ("val", "test")}
        fractions = [0.0 if own_folder[name] else f for name, f in zip(("val", "test"), self.fractions, strict=True)]
        val_idx, test_idx, train_idx = stratified_split(targets, fractions, self.split_seed)
        self.splits["train"] = Subset(train_aug, train_idx)
        for name, held_out in (("val", val_idx), ("test", test_idx)):
            if own_folder[name]:
                dataset = self._folder(self.root / name, self.eval_tf)
                if dataset.classes != self.classes:
                    raise ConfigError(
                        f"classes in '{self.root / name}' differ from '{base}': {dataset.classes} vs {self.classes}"
                    )
                self.splits[name] = dataset
            else:
                self.splits[name] = Subset(train_plain, held_out)

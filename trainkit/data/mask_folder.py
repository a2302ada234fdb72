"""Segmentation data on disk: `root/images/NAME.jpg|png|...` paired by name with `root/masks/NAME.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Subset
from torchvision.transforms.v2 import functional as TF

from trainkit.data._common import SplitDataModule, default_num_workers, seeded_split
from trainkit.data._masks import PairedDataset
from trainkit.errors import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


class FilePairs(PairedDataset):
    """Reads image and mask files on demand, resized to `image_size` (nearest neighbour for masks)."""

    def __init__(
        self, pairs: list[tuple[Path, Path]], num_classes: int, ignore_index: int | None, in_chans: int,
        image_size: int | None, transform: nn.Module | None, mean: tuple[float, ...], std: tuple[float, ...],
    ) -> None:
        super().__init__(transform, mean, std)
        self.pairs, self.num_classes, self.ignore_index = pairs, num_classes, ignore_index
        self.in_chans, self.image_size = in_chans, image_size

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        image_path, mask_path = self.pairs[index]
        with Image.open(image_path) as file:
            image = TF.to_image(file.convert("L" if self.in_chans == 1 else "RGB"))
        with Image.open(mask_path) as file:
            mask = torch.from_numpy(np.array(file if file.mode in ("L", "P", "I", "I;16") else file.convert("L")))
        if mask.ndim != 2:
            raise ConfigError(f"mask '{mask_path}' has {mask.shape[-1]} channels; a mask is one channel of class ids")
        bad = (mask >= self.num_classes) & (mask != (-1 if self.ignore_index is None else self.ignore_index))
        if bad.any():
            raise ConfigError(
                f"mask '{mask_path}' holds value {int(mask[bad].max())} but num_classes is {self.num_classes}; "
                "raise --data.init_args.num_classes or set ignore_index for unlabeled pixels"
            )
        image = TF.to_dtype(image, torch.float32, scale=True)
        mask = mask.long()
        if self.image_size is not None:
            size = [self.image_size, self.image_size]
            image = TF.resize(image, size, antialias=True)
            mask = TF.resize(mask[None], size, interpolation=TF.InterpolationMode.NEAREST)[0]
        return image, mask


class MaskFolderDataModule(SplitDataModule):
    """Images in `root/images/`, class-id masks in `root/masks/` with the same file names (any extension)."""

    def __init__(
        self,
        root: str,
        num_classes: int,
        image_size: int | None = None,
        grayscale: bool = False,
        ignore_index: int | None = None,
        batch_size: int = 16,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        num_workers: int | None = None,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Args:
        root: folder holding `images/` and `masks/`.
        num_classes: classes in the masks, background included; mask pixel values are 0..num_classes-1.
        image_size: resize every pair to this square side; None keeps the files' size (then all must agree).
        grayscale: read images as one channel.
        ignore_index: mask value of unlabeled pixels (allowed beyond num_classes, e.g. 255).
        batch_size: samples per batch.
        val_fraction: share of pairs held out for validation.
        test_fraction: share of pairs held out for test.
        split_seed: seed of those splits.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        num_workers: loader workers; None picks from the CPU count.
        train_transform: torchvision v2 augmentation applied to image and mask together.
        """
        super().__init__()
        self.save_hyperparameters(ignore=["train_transform"])
        self.root, self.num_classes, self.image_size = Path(root), num_classes, image_size
        self.ignore_index = ignore_index
        self.in_chans = 1 if grayscale else 3
        if grayscale and len(mean) == 3:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        self.mean, self.std = mean, std
        self.batch_size, self.fractions, self.split_seed = batch_size, (val_fraction, test_fraction), split_seed
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.train_transform = train_transform
        self.pairs: list[tuple[Path, Path]] = []
        self.splits: dict[str, Subset] = {}

    def find_pairs(self) -> list[tuple[Path, Path]]:
        """(image, mask) paths paired by file name without extension; a one-line error for any unpaired or mis-sized."""
        from PIL import Image

        folders = {name: self.root / name for name in ("images", "masks")}
        for folder in folders.values():
            if not folder.is_dir():
                raise ConfigError(f"'{folder}' does not exist; --data.init_args.root needs images/ and masks/ folders")
        found = {
            name: {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
            for name, folder in folders.items()
        }
        images, masks = found["images"], found["masks"]
        if not images:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise ConfigError(f"no image files in '{folders['images']}' (looked for {kinds}); add images there")
        no_mask = sorted(images[s].name for s in images.keys() - masks.keys())
        no_image = sorted(masks[s].name for s in masks.keys() - images.keys())
        if no_mask or no_image:
            parts = [f"images without a mask in {folders['masks']}: {_listing(no_mask)}"] if no_mask else []
            parts += [f"masks without an image in {folders['images']}: {_listing(no_image)}"] if no_image else []
            raise ConfigError(f"unpaired files ({'; '.join(parts)}); masks pair with images by file name")
        pairs = [(images[stem], masks[stem]) for stem in sorted(images)]
        sizes: dict[tuple[int, int], str] = {}
        for image_path, mask_path in pairs:
            with Image.open(image_path) as image, Image.open(mask_path) as mask:  # reads headers only
                if image.size != mask.size:
                    raise ConfigError(
                        f"mis-sized pair: image '{image_path.name}' is {image.size[0]}x{image.size[1]} but mask "
                        f"'{mask_path.name}' is {mask.size[0]}x{mask.size[1]}; a mask must match its image in size"
                    )
                sizes.setdefault(image.size, image_path.name)
        if self.image_size is None and len(sizes) > 1:
            examples = ", ".join(f"{name} {w}x{h}" for (w, h), name in list(sizes.items())[:3])
            raise ConfigError(f"images differ in size ({examples}); set --data.init_args.image_size to resize them")
        return pairs

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.pairs = self.find_pairs()
        split = seeded_split(len(self.pairs), self.fractions, self.split_seed, f"pairs in '{self.root}'")
        indices = dict(zip(("val", "test", "train"), split, strict=True))
        for name, idx in indices.items():
            transform = self.train_transform if name == "train" else None
            dataset = FilePairs(self.pairs, self.num_classes, self.ignore_index, self.in_chans, self.image_size,
                                transform, self.mean, self.std)
            self.splits[name] = Subset(dataset, idx)

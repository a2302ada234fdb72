"""Which photograph is this patch from: 12 classes of photographs and textures that ship inside scikit-image's wheel
(no download), cut into patches with a fixed spatial split, for few-label transfer learning.

Each image's columns are split left to right: the first half gives training patches, the next fifth validation, the
rest test, each patch inside its own band, so no test pixel is ever seen in training. Images are read in gray (and
repeated to 3 channels): color alone would tell most sources apart, texture and shape must do it here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from trainkit.data._common import SplitDataModule, TensorImageDataset
from trainkit.errors import ConfigError

# The natural photographs and textures in skimage/data (the wheel's own files); page/text/synthetic ones left out.
SOURCES = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
           "gravel.png", "ihc.png", "moon.png", "motorcycle_left.png", "rocket.jpg")
BANDS = (0.5, 0.7)  # column fractions where train ends and val ends; test is the rest
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def skimage_data_folder() -> Path:
    """scikit-image's bundled data folder; a ConfigError naming the extra when it is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("PhotoPatchesDataModule reads scikit-image's bundled photographs; pip install -e "
                          ".[pretrained] (or scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _patches(image: Tensor, size: int, stride: int, start: float, stop: float) -> Tensor:
    """(N, 1, size, size) patches whose columns lie within [start, stop) of the image's width."""
    height, width = image.shape[-2:]
    left, right = int(start * width), int(stop * width)
    xs = range(left, right - size + 1, stride)
    ys = range(0, height - size + 1, stride)
    return torch.stack([image[:, y:y + size, x:x + size] for y in ys for x in xs])


class _Normalize(nn.Module):
    """Normalization whose mean/std the pretrained weights can set after the datasets exist."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.set(mean, std)

    def set(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        return (image - self.mean) / self.std


class PhotoPatchesDataModule(SplitDataModule):
    """Patches of 12 bundled photographs/textures, labelled by source image; `labels_per_class` for few-label runs."""

    num_classes = len(SOURCES)
    class_names = [name.split(".")[0] for name in SOURCES]
    in_chans = 3

    def __init__(
        self,
        labels_per_class: int | None = 10,
        patch_size: int = 64,
        stride: int = 32,
        image_size: int = 96,
        batch_size: int = 32,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        split_seed: int = 0,
        num_workers: int = 0,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            labels_per_class: training patches kept per class (drawn with `split_seed`); None keeps all (40-112).
            patch_size: side of a patch in source pixels.
            stride: step between patches in source pixels (overlap within a band only).
            image_size: side patches are resized to.
            batch_size: samples per batch.
            mean: per-channel normalization mean; None takes the pretrained weights' (ImageNet's without any).
            std: per-channel normalization std; None as for mean.
            split_seed: seed of the labelled subset.
            num_workers: loader workers; 0 is fastest for data held in memory.
            train_transform: augmentation on each [0, 1] training tensor before normalization.
        """
        super().__init__()
        self.save_hyperparameters(ignore=["train_transform"], logger=False)
        self.labels_per_class, self.patch_size, self.stride = labels_per_class, patch_size, stride
        self.image_size, self.batch_size, self.split_seed = image_size, batch_size, split_seed
        self.num_workers, self.train_transform = num_workers, train_transform
        self.explicit_normalization, self.adopted = mean is not None or std is not None, False
        self.normalize = _Normalize(mean or IMAGENET_MEAN, std or IMAGENET_STD)
        self.splits: dict[str, TensorImageDataset] = {}

    def use_pretrained_normalization(self, mean: tuple[float, ...], std: tuple[float, ...], size: int) -> None:
        """Normalize as the pretrained weights were trained, unless the config set mean/std; said once."""
        if self.adopted:  # fit, then test in the same process
            return
        self.adopted = True
        if self.explicit_normalization:
            rank_zero_info(f"trainkit: the weights were trained with mean {mean} std {std}; keeping the config's")
            return
        self.normalize.set(mean, std)
        rank_zero_info(f"trainkit: inputs normalized as the pretrained weights were trained: mean {mean} std {std} "
                       f"(their input size {size}, here {self.image_size})")

    def _train_transform(self, image: Tensor) -> Tensor:
        if self.train_transform is not None:
            image = self.train_transform(image)
        return self.normalize(image)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        from PIL import Image

        folder = skimage_data_folder()
        bands = {"train": (0.0, BANDS[0]), "val": BANDS, "test": (BANDS[1], 1.0)}
        parts: dict[str, tuple[list[Tensor], list[Tensor]]] = {name: ([], []) for name in bands}
        generator = torch.Generator().manual_seed(self.split_seed)
        for label, name in enumerate(SOURCES):
            with Image.open(folder / name) as file:
                gray = torch.frombuffer(bytearray(file.convert("L").tobytes()), dtype=torch.uint8)
                image = gray.view(1, file.height, file.width).float() / 255
            for split, (start, stop) in bands.items():
                patches = _patches(image, self.patch_size, self.stride, start, stop)
                if split == "train" and self.labels_per_class is not None:
                    if self.labels_per_class > len(patches):
                        raise ConfigError(f"labels_per_class {self.labels_per_class} is more than the "
                                          f"{len(patches)} training patches of {name}; set at most {len(patches)}")
                    patches = patches[torch.randperm(len(patches), generator=generator)[:self.labels_per_class]]
                parts[split][0].append(patches)
                parts[split][1].append(torch.full((len(patches),), label))
        for split, (images, labels) in parts.items():
            stacked = F.interpolate(torch.cat(images), size=self.image_size, mode="bilinear", antialias=True)
            stacked = stacked.expand(-1, 3, -1, -1).clamp(0, 1)
            transform = self._train_transform if split == "train" else self.normalize
            self.splits[split] = TensorImageDataset(stacked, torch.cat(labels), transform)

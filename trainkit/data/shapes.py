"""Generated segmentation data: circles, squares and triangles on textured, noisy backgrounds, with their masks.

Every image comes from its own seeded generator, so a seed gives the same data on every machine, and no file is
downloaded. Shape colours are random and drawn away from the background, so a network must learn the geometry.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from trainkit.data._common import SplitDataModule
from trainkit.data._masks import TensorPairs, channel_stats

SHAPE_CLASSES = ("background", "circle", "square", "triangle")


def render_shapes(
    count: int, image_size: int = 64, seed: int = 0, max_shapes: int = 3, noise: float = 0.08
) -> tuple[Tensor, Tensor]:
    """`count` images (N, 3, S, S) in [0, 1] and masks (N, S, S): 0 background, 1 circle, 2 square, 3 triangle."""
    ys, xs = np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5
    images = np.empty((count, 3, image_size, image_size), dtype=np.float32)
    masks = np.zeros((count, image_size, image_size), dtype=np.uint8)
    for n in range(count):
        rng = np.random.default_rng([seed, n])
        background = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        # Texture: stripes of random direction and period, so edges inside the background are not shape edges.
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 16)
        stripes = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / period)
        contrast = rng.uniform(0.05, 0.15) * rng.choice([-1, 1], 3)
        image = background[:, None, None] + contrast[:, None, None] * stripes[None]
        placed: list[tuple[float, float, float]] = []
        for _ in range(rng.integers(1, max_shapes + 1)):
            cls = int(rng.integers(1, 4))
            radius = rng.uniform(0.1, 0.2) * image_size
            cx, cy = rng.uniform(radius * 1.3, image_size - radius * 1.3, 2)
            # Shapes never touch: a half-hidden square can look like a triangle, which would make labels ambiguous.
            if any(math.hypot(cx - px, cy - py) < 1.3 * (radius + pr) + 1 for px, py, pr in placed):
                continue
            placed.append((cx, cy, radius))
            rot = rng.uniform(0, 2 * math.pi)
            u = (xs - cx) * math.cos(rot) + (ys - cy) * math.sin(rot)
            v = -(xs - cx) * math.sin(rot) + (ys - cy) * math.cos(rot)
            if cls == 1:
                inside = u**2 + v**2 <= radius**2
            elif cls == 2:
                inside = np.maximum(np.abs(u), np.abs(v)) <= radius * 0.85  # about the circle's area
            else:  # equilateral triangle of circumradius 1.3 r: inside all three edges at inradius 0.65 r
                normals = [math.pi / 2 + 2 * math.pi * k / 3 for k in range(3)]
                inside = np.all([u * math.cos(t) + v * math.sin(t) <= 0.65 * radius for t in normals], axis=0)
            color = rng.uniform(0, 1, 3).astype(np.float32)
            while np.abs(color - background).sum() < 0.6:  # visible against the background
                color = rng.uniform(0, 1, 3).astype(np.float32)
            image[:, inside] = color[:, None]
            masks[n][inside] = cls
        images[n] = np.clip(image + rng.normal(0, noise, image.shape), 0, 1)
    return torch.from_numpy(images), torch.from_numpy(masks).long()


def render_splits(
    sizes: dict[str, int], image_size: int, seed: int, max_shapes: int, noise: float
) -> dict[str, tuple[Tensor, Tensor]]:
    """(images, masks) per split name; each split draws from its own seed stream, so changing one split's size
    leaves the others unchanged."""
    return {
        name: render_shapes(count, image_size, seed * 3 + offset, max_shapes, noise)
        for offset, (name, count) in enumerate(sizes.items())
    }


class ShapesDataModule(SplitDataModule):
    """The generated shapes: 4 classes (background, circle, square, triangle), or 2 with `binary` (shape or not)."""

    in_chans = 3

    def __init__(
        self,
        num_train: int = 1000,
        num_val: int = 200,
        num_test: int = 200,
        image_size: int = 64,
        max_shapes: int = 3,
        noise: float = 0.08,
        binary: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Args:
        num_train: generated training images.
        num_val: generated validation images.
        num_test: generated test images.
        image_size: square image side in pixels.
        max_shapes: up to this many shapes per image (at least one); a shape that would touch another is left out.
        noise: std of the Gaussian pixel noise.
        binary: one foreground class for every shape (num_classes 2) instead of one class per shape kind.
        seed: data seed; each split draws from its own stream, so changing num_train leaves val/test unchanged.
        batch_size: samples per batch.
        num_workers: loader workers; 0 is fastest for data held in memory.
        train_transform: torchvision v2 augmentation applied to image and mask together (e.g. RandomHorizontalFlip).
        """
        super().__init__()
        self.save_hyperparameters(ignore=["train_transform"])
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.image_size, self.max_shapes, self.noise, self.seed = image_size, max_shapes, noise, seed
        self.binary = binary
        self.batch_size, self.num_workers, self.train_transform = batch_size, num_workers, train_transform
        self.num_classes = 2 if binary else len(SHAPE_CLASSES)
        self.class_names = ["background", "shape"] if binary else list(SHAPE_CLASSES)
        self.splits: dict[str, TensorPairs] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        rendered = render_splits(self.sizes, self.image_size, self.seed, self.max_shapes, self.noise)
        mean, std = channel_stats(rendered["train"][0])
        for name, (images, masks) in rendered.items():
            masks = (masks > 0).long() if self.binary else masks
            transform = self.train_transform if name == "train" else None
            self.splits[name] = TensorPairs(images, masks, transform, mean, std)

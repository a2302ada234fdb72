"""Generated image regression: the geometry of a shape (area, centroid) read off the rendered shapes' masks.

The images are those of `render_shapes` (random shape, colour and striped, noisy background), so the targets are
exact and no file is downloaded. Each is a fraction of the image: a network must find the shape to answer, and a
linear model on the pixels cannot, because the shape's colour and the background are random.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainkit.data._common import SplitDataModule, TensorImageDataset
from trainkit.data._masks import channel_stats
from trainkit.data.shapes import render_splits

GEOMETRY_TARGETS = ("area", "centroid_x", "centroid_y")


def mask_geometry(masks: Tensor) -> Tensor:
    """(N, 3) float32 per mask (N, S, S): foreground area fraction, centroid x and y in [0, 1] of the image side."""
    foreground = (masks > 0).float()
    side = masks.shape[-1]
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side  # pixel centres, as render_shapes draws them
    area = foreground.sum(dim=(1, 2))
    x = (foreground.sum(dim=1) * centres).sum(dim=1) / area.clamp_min(1)
    y = (foreground.sum(dim=2) * centres).sum(dim=1) / area.clamp_min(1)
    return torch.stack([area / side**2, x, y], dim=1)


class ShapeGeometryDataModule(SplitDataModule):
    """Regress a shape's area fraction and centroid (x, y) from the generated shapes' images: 3 outputs."""

    in_chans = 3
    num_outputs = len(GEOMETRY_TARGETS)

    def __init__(
        self,
        num_train: int = 4000,
        num_val: int = 500,
        num_test: int = 1000,
        image_size: int = 32,
        max_shapes: int = 1,
        noise: float = 0.08,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        """Args:
        num_train: generated training images.
        num_val: generated validation images.
        num_test: generated test images.
        image_size: square image side in pixels; 32 gives 3072 pixel values, fewer than the 4000 training images, so
            the least-squares baseline on the pixels is well-posed.
        max_shapes: up to this many shapes per image; with more than one, area and centroid are those of all the
            shapes together.
        noise: std of the Gaussian pixel noise.
        seed: data seed; each split draws from its own stream, so changing num_train leaves val/test unchanged.
        batch_size: samples per batch.
        num_workers: loader workers; 0 is fastest for data held in memory.
        """
        super().__init__()
        self.save_hyperparameters()
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.image_size, self.max_shapes, self.noise, self.seed = image_size, max_shapes, noise, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.target_names = list(GEOMETRY_TARGETS)
        self.splits: dict[str, TensorImageDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        # No train_transform: a flip or shift would move the centroid, so augmentation would need to move targets too.
        rendered = render_splits(self.sizes, self.image_size, self.seed, self.max_shapes, self.noise)
        mean, std = (torch.tensor(v)[:, None, None] for v in channel_stats(rendered["train"][0]))
        for name, (images, masks) in rendered.items():
            self.splits[name] = TensorImageDataset((images - mean) / std, mask_geometry(masks))

    def split_arrays(self, name: str) -> tuple[Tensor, Tensor]:
        """(pixels flattened to (N, 3 * S * S), targets (N, 3)) of the `train`, `val` or `test` split, normalised."""
        split = self.splits[name]
        return split.images.flatten(1), split.labels

    def train_targets(self) -> Tensor:
        """Targets of the training split (for target standardisation)."""
        return self.splits["train"].labels

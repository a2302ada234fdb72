"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images): real data with no download."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainkit.data._common import SplitDataModule, TensorImageDataset, stratified_split


class DigitsDataModule(SplitDataModule):
    """The digits as image tensors, split train/val/test by class with a fixed seed; optionally resized."""

    num_classes = 10
    class_names = [str(digit) for digit in range(10)]

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int | None = 32,
        in_chans: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        num_workers: int = 0,
        train_transform: nn.Module | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            batch_size: samples per batch.
            image_size: resize the 8x8 images to this side (timm CNNs need about 32); None keeps 8x8.
            in_chans: 1 for grayscale, 3 to repeat the channel for backbones that expect RGB.
            val_fraction: share of each class held out for validation.
            test_fraction: share of each class held out for test.
            split_seed: seed of the split (independent of the training seed, so runs compare on the same test set).
            num_workers: loader workers; 0 is fastest for data this small, held in memory.
            train_transform: augmentation applied to each training image tensor (e.g. torchvision.transforms.v2).
        """
        super().__init__()
        # logger=False: config.yaml records these, and merged hparams would clash with the model's in_chans
        self.save_hyperparameters(ignore=["train_transform"], logger=False)
        self.batch_size = batch_size
        self.image_size = image_size
        self.in_chans = in_chans
        self.fractions = (val_fraction, test_fraction)
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.train_transform = train_transform
        self.splits: dict[str, TensorImageDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.long)
        if self.image_size is not None and self.image_size != 8:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        val_idx, test_idx, train_idx = stratified_split(labels, self.fractions, self.split_seed)
        mean, std = images[train_idx].mean(), images[train_idx].std()
        images = ((images - mean) / std).expand(-1, self.in_chans, -1, -1).contiguous()
        self.splits = {
            "train": TensorImageDataset(images[train_idx], labels[train_idx], self.train_transform),
            "val": TensorImageDataset(images[val_idx], labels[val_idx]),
            "test": TensorImageDataset(images[test_idx], labels[test_idx]),
        }

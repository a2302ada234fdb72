"""Augmentation: image presets for a DataModule's `train_transform`, and mixup/cutmix for classification batches."""

from trainkit.augment.mixup import MixupConfig
from trainkit.augment.presets import ImageAugment

__all__ = ["ImageAugment", "MixupConfig"]

"""LightningDataModules: embedded digits, torchvision sets and image folders."""

from trainkit.data.balanced_sampler import ClassBalancedSampler
from trainkit.data.class_balanced import ClassBalancedDataModule
from trainkit.data.digits import DigitsDataModule
from trainkit.data.image_folder import ImageFolderDataModule
from trainkit.data.teacher_logits import TeacherLogitsDataModule
from trainkit.data.torchvision_sets import TorchvisionDataModule

__all__ = [
    "ClassBalancedDataModule",
    "ClassBalancedSampler",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "TeacherLogitsDataModule",
    "TorchvisionDataModule",
]

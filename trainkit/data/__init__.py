"""LightningDataModules: embedded digits, torchvision sets and image folders."""

from trainkit.data.digits import DigitsDataModule
from trainkit.data.image_folder import ImageFolderDataModule
from trainkit.data.torchvision_sets import TorchvisionDataModule

__all__ = ["DigitsDataModule", "ImageFolderDataModule", "TorchvisionDataModule"]

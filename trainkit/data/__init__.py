"""LightningDataModules: embedded digits, torchvision sets and image folders."""

from trainkit.data.csv_table import CSVDataModule
from trainkit.data.diabetes import DiabetesDataModule
from trainkit.data.digits import DigitsDataModule
from trainkit.data.image_folder import ImageFolderDataModule
from trainkit.data.mask_folder import MaskFolderDataModule
from trainkit.data.shapes import ShapesDataModule
from trainkit.data.torchvision_sets import TorchvisionDataModule

__all__ = [
    "CSVDataModule",
    "DiabetesDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "MaskFolderDataModule",
    "ShapesDataModule",
    "TorchvisionDataModule",
]

"""LightningDataModules: embedded digits, shapes (masks or geometry) and diabetes, torchvision sets, image and mask
folders, CSV tables, and
the tar shards `trainkit shard` writes (StreamingDataModule)."""

from trainkit.data.balanced_sampler import ClassBalancedSampler
from trainkit.data.class_balanced import ClassBalancedDataModule
from trainkit.data.csv_table import CSVDataModule
from trainkit.data.diabetes import DiabetesDataModule
from trainkit.data.digits import DigitsDataModule
from trainkit.data.image_folder import ImageFolderDataModule
from trainkit.data.instructions import InstructionDataModule
from trainkit.data.mask_folder import MaskFolderDataModule
from trainkit.data.photo_patches import PhotoPatchesDataModule
from trainkit.data.preferences import PreferenceDataModule
from trainkit.data.prompts import PromptDataModule
from trainkit.data.shape_geometry import ShapeGeometryDataModule
from trainkit.data.shapes import ShapesDataModule
from trainkit.data.streaming import StreamingDataModule
from trainkit.data.teacher_logits import TeacherLogitsDataModule
from trainkit.data.torchvision_sets import TorchvisionDataModule

__all__ = [
    "CSVDataModule",
    "ClassBalancedDataModule",
    "ClassBalancedSampler",
    "DiabetesDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "InstructionDataModule",
    "MaskFolderDataModule",
    "PhotoPatchesDataModule",
    "PreferenceDataModule",
    "PromptDataModule",
    "ShapeGeometryDataModule",
    "ShapesDataModule",
    "StreamingDataModule",
    "TeacherLogitsDataModule",
    "TorchvisionDataModule",
]

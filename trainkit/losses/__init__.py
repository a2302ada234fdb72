"""Losses no library offers in the form trainkit needs; each an nn.Module chosen from YAML by class_path.

Regression uses torch's own: torch.nn.HuberLoss (delta), torch.nn.MSELoss, torch.nn.L1Loss.
"""

from trainkit.losses.class_weights import balanced_class_weights, dataset_labels
from trainkit.losses.dice import BCEDiceLoss, CEDiceLoss, DiceLoss
from trainkit.losses.distillation import DistillationLoss
from trainkit.losses.focal import FocalLoss

__all__ = [
    "BCEDiceLoss", "CEDiceLoss", "DiceLoss", "DistillationLoss", "FocalLoss", "balanced_class_weights",
    "dataset_labels",
]

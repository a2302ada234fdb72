"""Losses no library offers in the form a task needs; each an nn.Module chosen from YAML by class_path."""

from trainkit.losses.class_weights import balanced_class_weights, dataset_labels
from trainkit.losses.distillation import DistillationLoss
from trainkit.losses.focal import FocalLoss

__all__ = ["DistillationLoss", "FocalLoss", "balanced_class_weights", "dataset_labels"]

"""Loss modules that no library offers in the needed form; each an nn.Module chosen from YAML by class_path."""

from trainkit.losses.distillation import DistillationLoss

__all__ = ["DistillationLoss"]

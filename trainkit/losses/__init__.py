"""Losses no library offers in the form trainkit needs; each an nn.Module chosen from YAML by class_path.

Regression uses torch's own: torch.nn.HuberLoss (delta), torch.nn.MSELoss, torch.nn.L1Loss.
"""

from trainkit.losses.dice import BCEDiceLoss, CEDiceLoss, DiceLoss

__all__ = ["BCEDiceLoss", "CEDiceLoss", "DiceLoss"]

"""A user's own DataModule, importable by class_path: 2-feature rows with integer labels 0..num_labels-1 and no
`num_classes` attribute (so only the first-batch checks can see the label range)."""

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


class LabelledRows(LightningDataModule):
    def __init__(self, num_labels: int = 5, batch_size: int = 8) -> None:
        super().__init__()
        self.batch_size = batch_size
        y = torch.arange(40) % num_labels
        self.rows = TensorDataset(torch.randn(40, 2) + y[:, None], y)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.rows, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.rows, batch_size=self.batch_size)

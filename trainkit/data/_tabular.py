"""Shared base of the tabular DataModules: a seeded train/val/test split, features standardised on train."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from trainkit.data._common import make_loader, seeded_split


class TabularDataModule(LightningDataModule):
    """Rows of numeric features and targets; subclasses set `feature_names`/`target_names` and implement `load`."""

    def __init__(
        self, batch_size: int, val_fraction: float, test_fraction: float, split_seed: int, standardize_features: bool
    ) -> None:
        super().__init__()
        self.batch_size, self.fractions, self.split_seed = batch_size, (val_fraction, test_fraction), split_seed
        self.standardize_features = standardize_features
        self.feature_names: list[str] = []
        self.target_names: list[str] = []
        self.arrays: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def in_features(self) -> int:
        """Number of feature columns (the MLP's input size)."""
        return len(self.feature_names)

    @property
    def num_outputs(self) -> int:
        """Number of target columns."""
        return len(self.target_names)

    def load(self) -> tuple[Tensor, Tensor]:
        """All rows: features (N, F) and targets (N, T), float32."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.arrays:
            return
        features, targets = self.load()
        split = seeded_split(len(features), self.fractions, self.split_seed, "rows")
        parts = dict(zip(("val", "test", "train"), (torch.tensor(part, dtype=torch.long) for part in split),
                         strict=True))
        if self.standardize_features:
            train = features[parts["train"]]
            features = (features - train.mean(dim=0)) / train.std(dim=0).clamp_min(1e-8)
        self.arrays = {name: (features[idx], targets[idx]) for name, idx in parts.items()}

    def split_arrays(self, name: str) -> tuple[Tensor, Tensor]:
        """(features, targets) of the `train`, `val` or `test` split, as the model sees them."""
        return self.arrays[name]

    def train_targets(self) -> Tensor:
        """Targets of the training split (for target standardisation)."""
        return self.arrays["train"][1]

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return make_loader(TensorDataset(*self.arrays[name]), self.batch_size, shuffle, 0)

    def train_dataloader(self) -> DataLoader:
        # Drop a last batch of 1: BatchNorm-style layers and per-batch statistics misbehave on a single row.
        n_train = len(self.arrays["train"][0])
        loader = self._loader("train", True)
        return make_loader(loader.dataset, self.batch_size, True, 0, drop_last=n_train % self.batch_size == 1)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def as_columns(values: Sequence[Sequence[float]] | Tensor) -> Tensor:
    """A float32 (N, K) tensor from rows or a 1-D tensor."""
    tensor = torch.as_tensor(values, dtype=torch.float32)
    return tensor.unsqueeze(1) if tensor.ndim == 1 else tensor

"""Shared base of the tabular DataModules: a seeded train/val/test split (stratified for class labels), features
standardised on train with statistics kept in the checkpoint, so `predict --source` scales new rows the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from trainkit.data._common import PredictSource, make_loader, seeded_split, stratified_split


class TabularDataModule(PredictSource, LightningDataModule):
    """Rows of numeric features and targets; subclasses set `feature_names`/`target_names` and implement `load`.

    Targets are float (N, T) for regression or multi-label 0/1 columns, or class indices (N,) long, which are
    split stratified (each class in the same proportion in every split).
    """

    def __init__(
        self, batch_size: int, val_fraction: float, test_fraction: float, split_seed: int, standardize_features: bool
    ) -> None:
        super().__init__()
        self.batch_size, self.fractions, self.split_seed = batch_size, (val_fraction, test_fraction), split_seed
        self.standardize_features = standardize_features
        self.feature_names: list[str] = []
        self.target_names: list[str] = []
        self.arrays: dict[str, tuple[Tensor, Tensor]] = {}
        self.feature_mean: Tensor | None = None
        self.feature_std: Tensor | None = None

    @property
    def in_features(self) -> int | None:
        """Number of feature columns (the MLP's input size); None while they are not known yet."""
        return len(self.feature_names) or None

    @property
    def num_outputs(self) -> int:
        """Number of target columns."""
        return len(self.target_names)

    def load(self) -> tuple[Tensor, Tensor]:
        """All rows: features (N, F) and targets (N, T), float32."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.arrays or stage == "predict":  # predict reads --source (or sets the test split up) when it needs it
            return
        features, targets = self.load()
        if not targets.is_floating_point() and targets.ndim == 1:
            val, test, train = (torch.as_tensor(part, dtype=torch.long)
                                for part in stratified_split(targets, self.fractions, self.split_seed))
            parts = {"val": val, "test": test, "train": train}
        else:
            split = seeded_split(len(features), self.fractions, self.split_seed, "rows")
            parts = dict(zip(("val", "test", "train"), (torch.tensor(part, dtype=torch.long) for part in split),
                             strict=True))
        if self.standardize_features:
            train = features[parts["train"]]
            self.feature_mean, self.feature_std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-8)
        self.arrays = {name: (self.scaled(features[idx]), targets[idx]) for name, idx in parts.items()}

    def scaled(self, features: Tensor) -> Tensor:
        """Features in the units the model learnt: standardised with the training rows' mean and std."""
        if self.feature_mean is None or self.feature_std is None:
            return features
        return (features - self.feature_mean) / self.feature_std

    def state_dict(self) -> dict[str, Any]:
        """The feature statistics, saved in checkpoints: predicting new rows needs no training data."""
        if self.feature_mean is None:
            return {}
        return {"feature_mean": self.feature_mean, "feature_std": self.feature_std}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.feature_mean, self.feature_std = state_dict.get("feature_mean"), state_dict.get("feature_std")

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
        if self.predict_source is None:
            self.setup("test")
            return self.test_dataloader()
        if self.standardize_features and self.feature_mean is None:  # a checkpoint from before the statistics were kept
            self.setup("fit")
        dataset, self.predict_keys = self.source_dataset(self.predict_source, self.skip_unreadable)
        return make_loader(dataset, self.batch_size, False, 0)


def as_columns(values: Sequence[Sequence[float]] | Tensor) -> Tensor:
    """A float32 (N, K) tensor from rows or a 1-D tensor."""
    tensor = torch.as_tensor(values, dtype=torch.float32)
    return tensor.unsqueeze(1) if tensor.ndim == 1 else tensor

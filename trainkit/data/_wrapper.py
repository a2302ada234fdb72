"""Base of DataModules that change how another DataModule's training set is served and pass the rest through."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset


class DataModuleWrapper(LightningDataModule):
    """Delegates everything but `train_dataloader` to `data`, attributes included (num_classes, in_chans, ...)."""

    def __init__(self, data: LightningDataModule) -> None:
        super().__init__()
        self.data = data

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes the wrapper lacks, so the wrapped module answers model/data consistency checks.
        data = self.__dict__.get("data")
        if data is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(data, name)

    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.data.trainer = self.trainer
        self.data.setup(stage)

    def train_dataloader(self) -> Any:
        return self.data.train_dataloader()

    @staticmethod
    def loader_like(inner: DataLoader, dataset: Dataset, **changes: Any) -> DataLoader:
        """A loader over `dataset` with `inner`'s batch size, workers and memory settings, plus `changes`."""
        settings = {"batch_size": inner.batch_size, "num_workers": inner.num_workers, "pin_memory": inner.pin_memory,
                    "persistent_workers": inner.persistent_workers}
        return DataLoader(dataset, **(settings | changes))

    def val_dataloader(self) -> Any:
        return self.data.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.data.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.data.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return self.data.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.data.load_state_dict(state_dict)

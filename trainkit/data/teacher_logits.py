"""Training batches that carry a teacher's logits, computed once before training instead of at every step."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from trainkit.checkpoints import load_task
from trainkit.data._wrapper import DataModuleWrapper

UNLABELED = -1
"""Label given to pool samples: DistillationLoss uses them for the teacher term only."""


class TeacherLogitsDataModule(DataModuleWrapper):
    """Wraps `data`: training samples become (image, label, teacher logits), plus an optional unlabeled `pool`.

    The teacher runs once over the training set (and the pool) when fitting starts; each epoch then costs the
    student alone. The logits belong to the images as the training set serves them at that moment, so use this
    with data that has no random augmentation (with augmentation, run the teacher live instead).
    """

    def __init__(
        self, data: LightningDataModule, teacher: str, pool: LightningDataModule | None = None, batch_size: int = 256
    ) -> None:
        """Args:
        data: the labeled DataModule (class_path/init_args); val/test/predict come from it unchanged.
        teacher: trainkit checkpoint of the teacher.
        pool: a DataModule whose training images (labels ignored) add unlabeled samples for the teacher term.
        batch_size: batch size of the one teacher pass.
        """
        super().__init__(data)
        self.teacher, self.pool, self.inference_batch_size = teacher, pool, batch_size
        self.train_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if stage not in ("fit", None) or self.train_set is not None:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        teacher = load_task(self.teacher).to(device).eval()
        parts = [_WithLogits(self.data.train_dataloader().dataset, teacher, self.inference_batch_size, labeled=True)]
        if self.pool is not None:
            self.pool.setup("fit")
            parts.append(_WithLogits(self.pool.train_dataloader().dataset, teacher, self.inference_batch_size, False))
        self.train_set = ConcatDataset(parts)
        rank_zero_info(f"teacher logits computed once for {len(self.train_set)} training samples ({len(parts)} sets)")

    def train_dataloader(self) -> DataLoader:
        inner = self.data.train_dataloader()
        return self.loader_like(inner, self.train_set, shuffle=True)


class _WithLogits(Dataset):
    """A dataset of (input, label) with the teacher's logits of every sample attached; labels dropped if unlabeled."""

    def __init__(self, dataset: Dataset, teacher: nn.Module, batch_size: int, labeled: bool) -> None:
        self.dataset, self.labeled = dataset, labeled
        device = next(teacher.parameters()).device
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        with torch.no_grad():
            self.logits = torch.cat([teacher(batch[0].to(device)).float().cpu() for batch in loader])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Tensor, Tensor]:
        sample = self.dataset[index]
        label = torch.as_tensor(sample[1] if self.labeled else UNLABELED)
        return sample[0], label, self.logits[index]

"""Any DataModule with class-balanced training batches (P classes x m samples), as metric-learning losses need."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from trainkit.data._wrapper import DataModuleWrapper
from trainkit.data.balanced_sampler import ClassBalancedSampler
from trainkit.losses.class_weights import dataset_labels


class ClassBalancedDataModule(DataModuleWrapper):
    """Wraps `data`: its training set is drawn in class-balanced batches; val/test/predict are passed through.

    Attributes the model checks against its data (num_classes, in_chans, ...) are read from the wrapped module.
    """

    def __init__(self, data: LightningDataModule, classes_per_batch: int = 8, samples_per_class: int = 8) -> None:
        """Args:
        data: the DataModule to draw from (class_path/init_args).
        classes_per_batch: distinct classes per training batch (P); the batch size is P x m.
        samples_per_class: samples of each class per training batch (m); >= 2 so every anchor has a positive.
        """
        super().__init__(data)
        self.classes_per_batch, self.samples_per_class = classes_per_batch, samples_per_class
        self.batch_size = classes_per_batch * samples_per_class

    def train_dataloader(self) -> DataLoader:
        inner = self.data.train_dataloader()
        trainer = self.trainer
        # Every rank must draw the same epoch order; rank 0's seed is the run's seed (fixed by seed_everything).
        seed = torch.initial_seed() % 2**31
        seed = trainer.strategy.broadcast(seed) if trainer is not None else seed
        sampler = ClassBalancedSampler(
            dataset_labels(inner.dataset),
            self.classes_per_batch,
            self.samples_per_class,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            seed=seed,
        )
        return self.loader_like(inner, inner.dataset, batch_size=sampler.batch_size, sampler=sampler,
                                collate_fn=inner.collate_fn)


"""Class-balanced batches (P classes x m samples each) for metric learning, sharded across DDP ranks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from trainkit.errors import ConfigError


class ClassBalancedSampler(DistributedSampler):
    """Yields indices whose consecutive `classes_per_batch * samples_per_class` chunks are class-balanced batches.

    Written here rather than taken from pytorch-metric-learning because its MPerClassSampler draws from numpy's
    global RNG and knows nothing of ranks, so DDP processes cannot agree on one epoch order. This one seeds each
    epoch from (seed, epoch), cuts the epoch into whole batches and gives rank r every world_size-th batch. It
    subclasses DistributedSampler so Lightning keeps it under DDP (and calls `set_epoch`) instead of replacing it.
    Use it with `DataLoader(dataset, sampler=it, batch_size=it.batch_size)`.
    """

    def __init__(
        self,
        labels: Sequence[int] | Tensor,
        classes_per_batch: int,
        samples_per_class: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        """Args:
        labels: the class of every sample of the dataset, in dataset order.
        classes_per_batch: distinct classes in each batch (P).
        samples_per_class: samples of each of those classes in each batch (m); drawn with replacement only
            for a class smaller than m.
        num_replicas: number of DDP processes.
        rank: this process's rank.
        seed: base seed; every rank must use the same one.
        """
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.classes = torch.unique(self.labels)
        if classes_per_batch > len(self.classes):
            raise ConfigError(
                f"classes_per_batch={classes_per_batch} but the data has only {len(self.classes)} classes; "
                f"set classes_per_batch <= {len(self.classes)}"
            )
        if classes_per_batch < 2 or samples_per_class < 2:
            raise ConfigError(
                f"class-balanced batches need >= 2 classes and >= 2 samples per class (got {classes_per_batch} x "
                f"{samples_per_class}): triplets need a positive and a negative"
            )
        self.classes_per_batch, self.samples_per_class = classes_per_batch, samples_per_class
        self.batch_size = classes_per_batch * samples_per_class
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.shuffle, self.drop_last = True, True  # what DistributedSampler readers expect to find
        # Whole batches per rank: about one pass over the data per epoch, split evenly so every rank steps together.
        self.batches_per_rank = max(1, len(self.labels) // (self.batch_size * num_replicas))
        self.by_class = [torch.nonzero(self.labels == c).flatten() for c in self.classes]

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch` (Lightning calls this at the start of every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        queues = [members[torch.randperm(len(members), generator=generator)].tolist() for members in self.by_class]
        batches: list[list[int]] = []
        for _ in range(self.batches_per_rank * self.num_replicas):
            batch: list[int] = []
            for c in torch.randperm(len(self.classes), generator=generator)[: self.classes_per_batch].tolist():
                if len(queues[c]) < self.samples_per_class:  # class used up: a fresh permutation, no repeats in a batch
                    members = self.by_class[c]
                    queues[c] = members[torch.randperm(len(members), generator=generator)].tolist()
                    while len(queues[c]) < self.samples_per_class:  # only a class smaller than m repeats samples
                        queues[c] += queues[c]
                batch.extend(queues[c][: self.samples_per_class])
                queues[c] = queues[c][self.samples_per_class :]
            batches.append(batch)
        for batch in batches[self.rank :: self.num_replicas]:
            yield from batch

"""A seeded sampler that can start part-way through an epoch, so a resumed run sees exactly the batches it missed."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler whose order depends only on (seed, epoch) and which can skip the samples already seen.

    It is a DistributedSampler so that Lightning keeps it under DDP instead of swapping in its own; with one process
    it is an ordinary seeded shuffle. `resume(epoch, start)` makes the next pass begin after the first `start` samples
    of `epoch` taken by all processes together, so a position saved by W processes resumes on any other number: the
    epoch's order is the same for every world size, and the processes split what is left of it.
    """

    def __init__(
        self, dataset: Sized, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        """Args:
        dataset: the dataset to index.
        num_replicas: number of processes sharing each epoch.
        rank: this process's index among them.
        shuffle: a fresh seeded permutation every epoch; False keeps the dataset order.
        seed: seed of the permutations (the same on every process).
        drop_last: drop the tail that does not divide evenly among processes instead of padding it.
        """
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,  # type: ignore[arg-type]
                         drop_last=drop_last)
        self.start = 0

    def resume(self, epoch: int, start: int) -> None:
        """Make the next pass be epoch `epoch`, beginning after its first `start` samples (all processes together)."""
        self.epoch, self.start = epoch, start

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # a skip belongs to the epoch it was restored for
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0  # skip once: the epoch after a resume starts at its beginning
        if start == 0:
            return super().__iter__()
        # DistributedSampler deals position i of the epoch's order to rank i % num_replicas, so the first `start`
        # samples of all ranks together are the first `start` of the order, whatever the number of ranks was.
        # What is left is dealt the same way, padded (or cut, with drop_last) to an equal share per rank.
        order = self._order()
        rest = order[start:]
        if self.drop_last:
            rest = rest[: len(rest) - len(rest) % self.num_replicas]
        elif rest and len(rest) % self.num_replicas:
            missing = self.num_replicas - len(rest) % self.num_replicas
            rest += (order * (missing // len(order) + 1))[:missing]  # like DistributedSampler, from the epoch's start
        return iter(rest[self.rank :: self.num_replicas])

    def _order(self) -> list[int]:
        """The epoch's order of all sample indices, as DistributedSampler draws it."""
        if not self.shuffle:
            return list(range(len(self.dataset)))  # type: ignore[arg-type]
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]

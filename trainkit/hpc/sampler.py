"""A seeded sampler that can start part-way through an epoch, so a resumed run sees exactly the batches it missed."""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler whose order depends only on (seed, epoch) and which can skip the samples already seen.

    It is a DistributedSampler so that Lightning keeps it under DDP instead of swapping in its own; with one process
    it is an ordinary seeded shuffle. `resume(epoch, start)` makes the next pass begin at sample `start` of `epoch`.
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
        """Make the next pass be epoch `epoch`, beginning after its first `start` samples of this process."""
        self.epoch, self.start = epoch, start

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # a skip belongs to the epoch it was restored for
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0  # skip once: the epoch after a resume starts at its beginning
        return iter(indices[start:])

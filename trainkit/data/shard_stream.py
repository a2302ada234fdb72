"""ShardStream: an IterableDataset over tar shards whose position is (epoch, batches done), so it resumes exactly.

Each epoch's order is a pure function of (seed, epoch): the shards in a seeded order, then a seeded shuffle buffer
(the WebDataset scheme), computed on sample indices from the manifest's counts, so every process agrees on it without
reading a file. The order is cut into one contiguous block per rank (sizes differ by at most one sample; no sample is
padded or dropped), each block into the same number of batches on every rank (DDP steps in lockstep), and batch `b`
goes to DataLoader worker `(b - first) % workers`, which is the order the DataLoader collects them in. Resuming at
batch `first` of an epoch is then reading from there: nothing is replayed or skipped through.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data.dataloader import _InfiniteConstantSampler

from trainkit.data.shards import ShardReader, decode_sample
from trainkit.errors import ConfigError


def buffer_shuffle(stream: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """WebDataset's shuffle buffer on indices: hold `size` items, emit a random one and put the next in its place."""
    if size <= 1 or len(stream) <= 1:
        return stream
    if len(stream) <= size:
        return rng.permutation(stream)
    out = np.empty_like(stream)
    buffer = stream[:size].copy()
    picks = rng.integers(0, size, len(stream) - size)
    for position, (pick, incoming) in enumerate(zip(picks, stream[size:], strict=True)):
        out[position] = buffer[pick]
        buffer[pick] = incoming
    out[len(stream) - size:] = rng.permutation(buffer)
    return out


def epoch_order(counts: list[int], epoch: int, seed: int, shuffle: bool, buffer: int) -> np.ndarray:
    """Global sample indices in the order epoch `epoch` visits them (shard order shuffled, then a buffer shuffle)."""
    starts = np.cumsum([0, *counts])
    if not shuffle:
        return np.arange(starts[-1])
    rng = np.random.default_rng([seed, epoch])
    shards = rng.permutation(len(counts))
    stream = np.concatenate([np.arange(starts[s], starts[s + 1]) for s in shards]) if len(counts) else starts[:0]
    return buffer_shuffle(stream, buffer, rng)


def batches_per_rank(total: int, world: int, batch_size: int) -> int:
    """Batches every rank runs per epoch: enough for the largest rank's block at `batch_size`."""
    largest = -(-total // world)
    return -(-largest // batch_size)


def rank_batches(order: np.ndarray, rank: int, world: int, batch_size: int) -> list[np.ndarray]:
    """This rank's block of `order`, cut into `batches_per_rank` batches: full ones, then a shrinking tail."""
    total = len(order)
    block = order[rank * total // world:(rank + 1) * total // world]
    count = batches_per_rank(total, world, batch_size)
    sizes, left = [], len(block)
    for index in range(count):
        size = min(batch_size, left - (count - 1 - index))
        sizes.append(size)
        left -= size
    return np.split(block, np.cumsum(sizes)[:-1])


class ShardStream(IterableDataset):
    """Collated batches of one split's shards, for this rank, in the seeded order of the current epoch."""

    def __init__(
        self, folder: str | Path, split: dict[str, Any], batch_size: int, shuffle: bool, buffer: int, seed: int,
        transform: Callable[[Any, tuple[int, int, int]], Any], collate: Callable[[list[Any]], Any],
    ) -> None:
        self.reader = ShardReader(folder, [shard["name"] for shard in split["shards"]])
        self.counts = [shard["samples"] for shard in split["shards"]]
        self.starts = list(np.cumsum([0, *self.counts]).tolist())
        self.layout, self.total = split["layout"], self.starts[-1]
        self.batch_size, self.shuffle, self.buffer, self.seed = batch_size, shuffle, buffer, seed
        self.transform, self.collate = transform, collate
        self.rank, self.world = 0, 1
        # (epoch, first batch), in shared memory: DataLoader workers (persistent ones too) read what the main
        # process set for the epoch they are about to serve.
        self.position = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def distribute(self, rank: int, world: int) -> None:
        """Serve rank `rank` of `world` processes."""
        if self.total // world < batches_per_rank(self.total, world, self.batch_size):
            raise ConfigError(f"{self.total} samples are too few for {world} processes at batch size "
                              f"{self.batch_size}: some would get an empty batch; use fewer devices")
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch `epoch` next, from its start unless `resume` chose a batch in this very epoch."""
        if int(self.position[0]) != epoch:
            self.position.copy_(torch.tensor([epoch, 0]))

    def resume(self, epoch: int, batches: int) -> None:
        """Make the next pass epoch `epoch` from batch `batches` on (what a checkpoint saved)."""
        self.position.copy_(torch.tensor([epoch, batches]))

    def __len__(self) -> int:
        return batches_per_rank(self.total, self.world, self.batch_size)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of epoch `epoch`, as global sample indices."""
        if self._plan is None or self._plan[0] != epoch:
            order = epoch_order(self.counts, epoch, self.seed, self.shuffle, self.buffer)
            self._plan = (epoch, rank_batches(order, self.rank, self.world, self.batch_size))
        return self._plan[1]

    def sample(self, index: int, epoch: int) -> Any:
        """Sample `index` (global), decoded and transformed as in epoch `epoch`."""
        shard = bisect.bisect_right(self.starts, index) - 1
        members = self.reader.read(shard, index - self.starts[shard])
        return self.transform(decode_sample(members, self.layout), (self.seed, epoch, index))

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, first = (int(value) for value in self.position)
        plan = self.plan(epoch)
        for batch in range(first + worker, len(plan), workers):
            yield self.collate([self.sample(int(index), epoch) for index in plan[batch]])


class EpochSignal(_InfiniteConstantSampler):
    """Stands where Lightning looks for a sampler to call `set_epoch` on, and passes the epoch to the stream."""

    def __init__(self, stream: ShardStream) -> None:
        super().__init__()
        self.stream = stream

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

"""ClassBalancedSampler: every batch holds P classes x m samples, ranks split one shared order, epochs reshuffle."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainkit.data import ClassBalancedSampler
from trainkit.errors import ConfigError

# 5 classes of unequal size (12, 9, 7, 4, 3 samples): 35 samples.
LABELS = [0] * 12 + [1] * 9 + [2] * 7 + [3] * 4 + [4] * 3


def _batches(sampler: ClassBalancedSampler) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + sampler.batch_size] for i in range(0, len(order), sampler.batch_size)]


def test_every_batch_has_p_classes_with_m_samples_each() -> None:
    sampler = ClassBalancedSampler(LABELS, classes_per_batch=3, samples_per_class=4)
    batches = _batches(sampler)
    assert sampler.batch_size == 12 and len(sampler) == 24  # 35 // 12 = 2 whole batches
    assert len(batches) == 2
    for batch in batches:
        counts = Counter(LABELS[i] for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}


def test_small_class_repeats_only_when_smaller_than_m() -> None:
    # Class 4 has 3 samples but m=4: its 4 slots must reuse one of its 3 samples; no other class repeats.
    sampler = ClassBalancedSampler(LABELS, classes_per_batch=5, samples_per_class=4)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in _batches(sampler):
            for cls, count in Counter(LABELS[i] for i in batch).items():
                distinct = len({i for i in batch if LABELS[i] == cls})
                assert count == 4
                assert distinct == (3 if cls == 4 else 4)


def test_ranks_split_one_order_into_disjoint_equal_shards() -> None:
    labels = [c for c in range(4) for _ in range(10)]
    shards = [ClassBalancedSampler(labels, 2, 3, num_replicas=2, rank=r, seed=7) for r in range(2)]
    single = ClassBalancedSampler(labels, 2, 3, num_replicas=2, rank=0, seed=7)
    assert list(shards[0]) == list(single)  # same seed and epoch: the same order on every process
    b0, b1 = _batches(shards[0]), _batches(shards[1])
    assert len(b0) == len(b1) == 40 // (6 * 2)  # every rank steps the same number of times
    assert not {tuple(b) for b in b0} & {tuple(b) for b in b1}
    for batch in b0 + b1:
        assert sorted(Counter(labels[i] for i in batch).values()) == [3, 3]


def test_set_epoch_reshuffles_and_seed_repeats() -> None:
    a = ClassBalancedSampler(LABELS, 3, 2, seed=1)
    b = ClassBalancedSampler(LABELS, 3, 2, seed=1)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first


def test_dataloader_yields_balanced_batches() -> None:
    labels = torch.tensor(LABELS)
    sampler = ClassBalancedSampler(labels, 2, 3)
    dataset = TensorDataset(torch.arange(len(labels)), labels)
    loader = DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)
    for _, y in loader:
        assert sorted(torch.bincount(y).tolist())[-2:] == [3, 3] and int((torch.bincount(y) > 0).sum()) == 2


@pytest.mark.parametrize(("p", "m", "fragment"), [(6, 2, "only 5 classes"), (1, 4, ">= 2 classes")])
def test_impossible_batches_are_config_errors(p: int, m: int, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        ClassBalancedSampler(LABELS, p, m)

"""ResumableSampler: the order depends only on (seed, epoch), a resume skips what was seen, ranks split the epoch."""

from __future__ import annotations

from trainkit.hpc.sampler import ResumableSampler

DATA = list(range(50))


def test_same_seed_and_epoch_same_order_and_a_resume_continues_it() -> None:
    full = list(ResumableSampler(DATA, seed=3))
    assert sorted(full) == DATA and full != DATA
    assert list(ResumableSampler(DATA, seed=3)) == full
    sampler = ResumableSampler(DATA, seed=3)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != full

    resumed = ResumableSampler(DATA, seed=3)
    resumed.resume(epoch=1, start=20)
    resumed.set_epoch(1)  # Lightning sets the epoch again at its start: the skip must survive it
    assert list(resumed) == epoch1[20:]
    assert list(resumed) == epoch1  # the skip applies once
    resumed.resume(epoch=1, start=20)
    resumed.set_epoch(2)  # a different epoch drops a pending skip
    assert len(list(resumed)) == 50


def test_two_ranks_split_each_global_batch_of_the_single_process_order() -> None:
    single = list(ResumableSampler(DATA, seed=0))
    ranks = [list(ResumableSampler(DATA, num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 25
    for batch in range(3):  # per-rank batch 8 = global batch 16
        together = set(ranks[0][8 * batch: 8 * batch + 8]) | set(ranks[1][8 * batch: 8 * batch + 8])
        assert together == set(single[16 * batch: 16 * batch + 16])
    unshuffled = ResumableSampler(DATA, shuffle=False)
    unshuffled.resume(0, 45)
    assert list(unshuffled) == [45, 46, 47, 48, 49]

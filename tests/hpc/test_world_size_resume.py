"""A checkpoint written by 2 processes resumes on 1 and one from 1 on 2: the epoch continues where it stopped, every
sample once, and the result matches an uninterrupted run up to the float order of the all-reduce. The same real runs
show that 2 DDP processes (gloo, CPU) train like one process with the same global batch and that only rank 0 writes
files (each half of each run is a DDP half or a single-process half of the same 8 global batches). The runs on one
process that nothing kills (the uninterrupted one, the resume on 1) go in-process: a fresh interpreter costs ~7 s of
CPU before it trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainkit.hpc.sampler import ResumableSampler

from ._runs import REPO, SMALL_DIGITS, VIT, ForkedRun, finish, kill_at_first_checkpoint, last_metrics, weights

DATA = list(range(50))


def _epoch(world: int, epoch: int, start: int = 0) -> list[list[int]]:
    """What each of `world` ranks draws in `epoch`, resumed after `start` samples of all ranks together."""
    samplers = [ResumableSampler(DATA, num_replicas=world, rank=rank, seed=7) for rank in range(world)]
    for sampler in samplers:
        sampler.resume(epoch, start)
        sampler.set_epoch(epoch)
    return [list(sampler) for sampler in samplers]


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2), (2, 3), (3, 2), (4, 1)])
def test_a_position_saved_on_one_world_size_resumes_on_another_seeing_each_sample_once(before: int,
                                                                                      after: int) -> None:
    per_rank_batch, batches = 4, 2
    seen = [i for rank in _epoch(before, 1) for i in rank[: per_rank_batch * batches]]
    rest = _epoch(after, 1, start=len(seen))
    assert len({len(rank) for rank in rest}) == 1, "every rank must get as many samples, or DDP waits forever"
    drawn = seen + [i for rank in rest for i in rank]
    assert sorted(set(drawn)) == DATA
    # The only repeats are DistributedSampler's usual padding up to a multiple of the world size.
    assert len(drawn) - len(DATA) == -(len(DATA) - len(seen)) % after
    # Nothing drawn after the resume was drawn before it.
    assert not set(seen) & {i for rank in rest for i in rank[: (len(DATA) - len(seen)) // after]}


def test_the_same_world_size_resumes_exactly_as_before() -> None:
    for world in (1, 2, 3):
        uninterrupted = _epoch(world, 3)
        assert _epoch(world, 3, start=5 * world) == [rank[5:] for rank in uninterrupted]


# 1 epoch of 8 global batches of 32; the first part is killed once it saved last.ckpt at step 4 (mid-epoch).
# Lightning defers a step checkpoint until its monitored metric exists, so we monitor one that exists at step 4.
ARGS = ["fit", *SMALL_DIGITS, *VIT, "--checkpoint.every_n_train_steps", "4", "--monitor", "train/loss_step",
        "--mode", "min"]
DDP = ["--config", str(REPO / "configs" / "trainer" / "ddp.yaml")]
LAYOUT = {1: ["--trainer.devices", "1", "--data.init_args.batch_size", "32"],
          2: [*DDP, "--trainer.devices", "2", "--data.init_args.batch_size", "16"]}


@pytest.mark.slow
def test_checkpoints_of_two_processes_resume_on_one_and_of_one_on_two(
    workdir: Path, trainkit, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    runs = workdir / "runs" / "digits"
    names = {1: "one_then_two", 2: "two_then_one"}  # keyed by the world size of the first part
    # The killed runs are forks of this process (a fresh interpreter is ~7 s of CPU); a DDP one's rank 0 starts
    # rank 1 as a process of its own.
    firsts = {runs / names[world] / "checkpoints" / "last.ckpt": ForkedRun(*ARGS, *LAYOUT[world], "--run_name",
                                                                         names[world], cwd=workdir) for world in (1, 2)}
    for world, saved in zip((1, 2), kill_at_first_checkpoint(firsts), strict=True):
        assert (saved["global_step"], saved["epoch"]) == (4, 0), "the checkpoint to resume from should be mid-epoch"
        assert saved["trainkit_resume"]["samples"] == 128 and saved["trainkit_resume"]["world_size"] == world
    # The same run, resumed with the other number of processes (and the per-process batch that keeps the global one).
    on_two = ForkedRun(*ARGS, *LAYOUT[2], "--run_name", names[1], "--ckpt_path", "last", cwd=workdir)
    torch.set_num_threads(1)  # as in the processes (OMP_NUM_THREADS=1)
    assert trainkit(*ARGS, *LAYOUT[1], "--run_name", names[2], "--ckpt_path", "last") == 0
    assert trainkit(*ARGS, *LAYOUT[1], "--run_name", "uninterrupted") == 0
    log_on_two = finish(on_two)

    assert "resuming a checkpoint of 2 processes on 1: epoch 0 continues after its first 128 samples" in caplog.text
    assert "resuming a checkpoint of 1 processes on 2: epoch 0 continues after its first 128 samples" in log_on_two
    final = {name: torch.load(runs / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
             for name in ("uninterrupted", *names.values())}
    assert {name: ckpt["global_step"] for name, ckpt in final.items()} == dict.fromkeys(final, 8)
    assert sorted(p.name for p in runs.iterdir()) == sorted(final)  # rank 1 made no run folder of its own
    # Validation on 2 processes (one_then_two ends there) matches one process: torchmetrics sync across ranks.
    two, one = last_metrics(runs / "one_then_two"), last_metrics(runs / "uninterrupted")
    assert two["step"] == one["step"] == 7
    assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-5)
    assert two["val/acc"] == pytest.approx(one["val/acc"], abs=1 / 64)  # at most one of 64 samples may flip
    # Same samples in the same global batches; the all-reduce of two halves sums in another order than one mean.
    ours = weights(runs / "uninterrupted" / "checkpoints" / "last.ckpt")
    for name in names.values():
        for key, value in weights(runs / name / "checkpoints" / "last.ckpt").items():
            torch.testing.assert_close(value, ours[key], rtol=1e-4, atol=1e-6, msg=f"{name}: {key}")

"""Before the first collective, a layout that does not match the allocation or an unreachable MASTER_ADDR ends the
run with one line (in seconds, not at a rendezvous that waits forever); the collective timeout is a flag."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from lightning.pytorch import Trainer

from tests.conftest import TINY_DIGITS
from trainkit.hpc.distributed_guard import DistributedGuard
from trainkit.hpc.topology import rendezvous_problem, topology_problem

SRUN = {"SLURM_JOB_NAME": "train", "SLURM_NNODES": "2", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2(x2)",
        "SLURM_STEP_NUM_TASKS": "4"}


def test_slurm_layouts_that_would_hang_are_named() -> None:
    assert topology_problem(2, 2, SRUN) is None
    assert "has 2 nodes but --trainer.num_nodes 1" in topology_problem(1, 4, SRUN)
    assert "has 4 tasks but --trainer.num_nodes 2 x --trainer.devices 1 = 2" in topology_problem(2, 1, SRUN)
    no_srun = {k: v for k, v in SRUN.items() if k != "SLURM_STEP_NUM_TASKS"}  # python run by the batch script itself
    assert "not started by srun" in topology_problem(2, 2, no_srun)
    assert "srun started 1 tasks" in topology_problem(2, 2, SRUN | {"SLURM_STEP_NUM_TASKS": "1"})
    interactive = SRUN | {"SLURM_JOB_NAME": "interactive"}  # Lightning ignores SLURM then: an environment launch
    assert topology_problem(2, 1, interactive | {"MASTER_ADDR": "node1"}) is None
    assert "without MASTER_ADDR" in topology_problem(2, 1, interactive)


def test_environment_launches_that_would_hang_are_named() -> None:
    launch = {"MASTER_ADDR": "node1", "MASTER_PORT": "29500", "NODE_RANK": "1", "WORLD_SIZE": "2"}
    assert topology_problem(2, 1, launch) is None
    assert "WORLD_SIZE=4 but --trainer.num_nodes 2 x --trainer.devices 1 = 2" in topology_problem(
        2, 1, launch | {"WORLD_SIZE": "4"})
    assert "NODE_RANK=2 but there are only 2 nodes" in topology_problem(2, 1, launch | {"NODE_RANK": "2"})
    assert "without MASTER_ADDR" in topology_problem(2, 1, {"NODE_RANK": "1"})
    assert topology_problem(1, 1, {"WORLD_SIZE": "8"}) is None  # one process: nothing to meet


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_rendezvous_is_reported_within_the_timeout() -> None:
    began = time.monotonic()
    problem = rendezvous_problem("127.0.0.1", _free_port(), global_rank=1, timeout=1.5)
    assert "cannot reach the rendezvous at MASTER_ADDR=127.0.0.1" in problem and "Connection refused" in problem
    assert time.monotonic() - began < 10
    assert "does not resolve" in rendezvous_problem("no-such-node.invalid", 29500, global_rank=1, timeout=60)
    # Rank 0 hosts the rendezvous, so its MASTER_ADDR must be its own (192.0.2.1 is a documentation address: only
    # a bind is tried, nothing is sent).
    assert "is not an address of this host" in rendezvous_problem("192.0.2.1", 29500, global_rank=0, timeout=60)
    assert rendezvous_problem("127.0.0.1", 29500, global_rank=0, timeout=60) is None
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert rendezvous_problem("127.0.0.1", server.getsockname()[1], global_rank=1, timeout=5) is None


def test_the_fit_ends_in_one_line_before_any_collective(trainkit, workdir, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    two_nodes = [*TINY_DIGITS, "--trainer.accelerator", "cpu", "--trainer.num_nodes", "2", "--trainer.devices", "1"]
    assert trainkit("fit", *two_nodes) == 2
    wrong = "trainkit: error: WORLD_SIZE=3 but --trainer.num_nodes 2 x --trainer.devices 1 = 2"
    assert wrong in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    began = time.monotonic()
    assert trainkit("fit", *two_nodes, "--distributed.timeout", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("trainkit: error: rank 1 cannot reach the rendezvous at MASTER_ADDR=127.0.0.1")
    assert time.monotonic() - began < 60
    assert not (workdir / "runs" / "digits").exists() or not any((workdir / "runs" / "digits").rglob("*.ckpt"))


def test_the_collective_timeout_is_set_on_the_strategy_unless_it_has_its_own() -> None:
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    DistributedGuard(timeout=42, check=False).prepare_trainer(trainer)
    assert trainer.strategy._timeout == timedelta(seconds=42)
    from lightning.pytorch.strategies import DDPStrategy

    # The process group starts with the rendezvous bound (the guard narrows it to 42 s once the ranks have met).
    late = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    DistributedGuard(timeout=42, rendezvous_timeout=300, check=False).prepare_trainer(late)
    assert late.strategy._timeout == timedelta(seconds=300)
    own = Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=7)), logger=False)
    DistributedGuard(timeout=42, check=False).prepare_trainer(own)
    assert own.strategy._timeout == timedelta(seconds=7)
    with pytest.raises(Exception, match="distributed.timeout must be positive"):
        DistributedGuard(timeout=0)
    with pytest.raises(Exception, match="distributed.rendezvous_timeout must be positive"):
        DistributedGuard(rendezvous_timeout=-1)

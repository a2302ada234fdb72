"""DDP across two hosts (two network namespaces joined by a veth pair), one process each, gloo, the standard
MASTER_ADDR/MASTER_PORT/NODE_RANK/WORLD_SIZE environment: it trains like one host, and a dead peer ends the run."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from trainkit.hpc.atomic import checkpoint_problem

from ._netns import start_nodes, two_hosts, wait_all
from ._runs import SMALL_DIGITS, VIT, last_metrics, weights

pytestmark = pytest.mark.netns

TWO_NODES = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--data.init_args.batch_size", "16"]


def _log(process) -> str:  # noqa: ANN001
    return process.log_path.read_text()


@pytest.mark.slow
def test_two_hosts_train_like_one_host_with_the_same_global_batch(workdir: Path, trainkit) -> None:  # noqa: ANN001
    with two_hosts() as hosts:
        nodes = start_nodes(hosts, [*SMALL_DIGITS, *VIT, *TWO_NODES, "--run_name", "two_hosts"], workdir, 29531)
        # The one-host run goes in-process meanwhile (a fresh interpreter costs ~7 s of CPU), on one thread as theirs.
        torch.set_num_threads(1)
        assert trainkit("fit", *SMALL_DIGITS, *VIT, "--trainer.devices", "1", "--data.init_args.batch_size", "32",
                        "--run_name", "one_host") == 0
        codes = wait_all(nodes, timeout=400)
        assert codes == [0, 0], f"exit codes {codes}:\n{_log(nodes[0])[-3000:]}\n{_log(nodes[1])[-3000:]}"

    runs = workdir / "runs" / "digits"
    assert "All distributed processes registered. Starting with 2 processes" in _log(nodes[0])
    assert sorted(p.name for p in runs.iterdir()) == ["one_host", "two_hosts"]  # node 1 wrote no folder of its own
    two, one = last_metrics(runs / "two_hosts"), last_metrics(runs / "one_host")
    assert two["step"] == one["step"] == 7
    # Same samples in the same global batches; only the float order differs (an all-reduce of two halves vs one
    # mean), so weights agree to 1e-4 relative (measured: at most 6e-8 apart), and val/loss to 1e-5.
    assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-5)
    ours = weights(runs / "one_host" / "checkpoints" / "last.ckpt")
    for name, value in weights(runs / "two_hosts" / "checkpoints" / "last.ckpt").items():
        torch.testing.assert_close(value, ours[name], rtol=1e-4, atol=1e-6, msg=name)


# The dead-peer test's --distributed.timeout: long enough for a loaded CI machine's slowest step; the two processes'
# start-up is bounded by --distributed.rendezvous_timeout instead.
TIMEOUT, RENDEZVOUS = 8, 120


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_a_dead_or_frozen_peer_ends_the_other_rank_within_the_timeout_with_its_checkpoint_intact(
    workdir: Path, how: signal.Signals
) -> None:
    # 2 epochs of 20 steps, last.ckpt every 3 (monitored on a metric that exists before the first validation).
    args = [*SMALL_DIGITS, *VIT, *TWO_NODES, "--trainer.limit_train_batches", "20", "--trainer.max_epochs", "2",
            "--checkpoint.every_n_train_steps", "3", "--monitor", "train/loss_step", "--mode", "min",
            "--distributed.timeout", str(TIMEOUT), "--distributed.rendezvous_timeout", str(RENDEZVOUS),
            "--run_name", "peer"]
    last = workdir / "runs" / "digits" / "peer" / "checkpoints" / "last.ckpt"
    with two_hosts() as hosts:
        nodes = start_nodes(hosts, args, workdir, 29532 + int(how))
        deadline = time.monotonic() + 300
        while not last.exists() and all(p.poll() is None for p in nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last.exists(), _log(nodes[0])[-3000:]
        os.kill(nodes[1].pid, how)  # node 1's only process: rank 1
        lost = time.monotonic()
        code = wait_all(nodes[:1], timeout=TIMEOUT + 60)[0]
        waited = time.monotonic() - lost
        assert code is not None, f"rank 0 still runs {waited:.0f} s after its peer was {how.name}:\n" + _log(
            nodes[0])[-3000:]
    text = _log(nodes[0])
    assert code != 0
    # A killed peer closes its sockets (gloo notices at once); a frozen one is noticed when the timeout expires.
    assert waited < TIMEOUT + 45, f"rank 0 took {waited:.0f} s"
    line = re.search(r"trainkit: rank 0 of 2 lost its peers .*", text)
    assert line, text[-3000:]
    assert f"the last checkpoint {last.relative_to(workdir)} is intact; resume with --ckpt_path last" in line.group()
    assert checkpoint_problem(last) is None
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] % 3 == 0

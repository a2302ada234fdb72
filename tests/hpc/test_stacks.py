"""Hang forensics: SIGQUIT writes a rank's stacks to the run folder, and a 2-process run whose rank 1 stalls away
from the collectives ends with both stacks written and one line naming rank 1 as the one elsewhere."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from trainkit.doctor.report import examine, table
from trainkit.hpc.stacks import StackDumps, where, whereabout_line

from ._runs import DOCTOR_OFF, REPO, ForkedRun, kill_tree


def test_sigquit_writes_this_process_stacks_and_they_read_as_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss_step\n0,0,1.0\n")
    dumps = StackDumps(tmp_path / "stacks", rank=0).install()
    try:
        # A running fit's doctor (its end-of-fit diagnosis) finds the empty file that waits for a SIGQUIT: no stack.
        assert "hang forensics" not in table(examine(tmp_path, write=False))
        os.kill(os.getpid(), signal.SIGQUIT)  # faulthandler writes from the signal handler itself
        time.sleep(0.1)
    finally:
        dumps.uninstall()
    text = (tmp_path / "stacks" / "rank0.txt").read_text()
    assert "test_sigquit_writes_this_process_stacks_and_they_read_as_elsewhere" in text
    assert where(text).startswith("is elsewhere: test_sigquit_writes_this_process_stacks")
    # `trainkit doctor RUN` reads them back beside its findings.
    assert "rank 0 is elsewhere: test_sigquit_writes" in table(examine(tmp_path, write=False))


def _install_and_uninstall(folder: Path, rank: int, start: multiprocessing.synchronize.Barrier, cycles: int) -> None:
    start.wait()
    for _ in range(cycles):
        StackDumps(folder, rank).install().uninstall()


def test_ranks_sharing_the_stacks_folder_set_up_and_clean_up_together(tmp_path: Path) -> None:
    # The ranks of a run share its stacks folder; each removes it when it is left empty. Rank 1 of a two-node SLURM
    # job died at the end of its fit (FileNotFoundError on the folder) when rank 0 removed it first.
    folder, ranks = tmp_path / "stacks", 4
    forked = multiprocessing.get_context("fork")
    start = forked.Barrier(ranks)
    processes = [forked.Process(target=_install_and_uninstall, args=(folder, r, start, 300)) for r in range(ranks)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * ranks
    assert not folder.exists()


def test_a_file_where_the_stacks_folder_should_be_is_an_error_not_a_retry_loop(tmp_path: Path) -> None:
    (tmp_path / "stacks").write_text("not a folder")
    with pytest.raises(FileExistsError):
        StackDumps(tmp_path / "stacks", rank=0).install()


def test_a_stack_inside_a_collective_names_it_and_its_caller(tmp_path: Path) -> None:
    site = "/venv/lib/python3.11/site-packages"
    text = (f'Thread 0x1 (most recent call first):\n  File "{site}/torch/distributed/distributed_c10d.py", line 2 in '
            f'all_reduce\n  File "{site}/torch/distributed/c10d_logger.py", line 81 in wrapper\n'
            f'  File "{site}/trainkit/callbacks/x.py", line 7 in on_validation_end\n')
    assert where(text) == ("waits at torch.distributed all_reduce from on_validation_end at "
                           "trainkit/callbacks/x.py:7")
    # A rank that is only passing through DDP's forward (its own code innermost) is elsewhere.
    inside_forward = (f'Current thread 0x2 (most recent call first):\n  File "/work/model.py", line 40 in forward\n'
                      f'  File "{site}/torch/nn/parallel/distributed.py", line 1 in forward\n')
    assert where(inside_forward) == "is elsewhere: forward at /work/model.py:40"
    (tmp_path / "rank0.txt").write_text(text)
    line = whereabout_line(tmp_path, 2, [("nodeA", 11), ("nodeB", 22)])
    assert line.endswith("rank 1: no stack (frozen, or on host nodeB: `kill -QUIT 22` there writes it)")


class StallOnRank1(nn.Module):
    """A linear regression whose 4th training forward on rank 1 sleeps: a rank stuck away from the collectives."""

    def __init__(self, seconds: float = 120.0) -> None:
        super().__init__()
        self.linear, self.seconds, self.calls = nn.Linear(10, 1), seconds, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        if self.training and self.calls == 4 and os.environ.get("LOCAL_RANK") == "1":
            time.sleep(self.seconds)
        return self.linear(x)


# --distributed.timeout bounds the collectives once both ranks have met; a loaded machine's rank 1 needs its time to
# start before the rendezvous, which --distributed.rendezvous_timeout bounds.
TIMEOUT, RENDEZVOUS = 8, 120


@pytest.mark.slow
def test_a_stalled_rank_is_named_elsewhere_with_both_stacks_in_the_run_folder(workdir: Path) -> None:
    backbone = '{"class_path": "tests.hpc.test_stacks.StallOnRank1"}'
    process = ForkedRun("fit", "--config", str(REPO / "configs" / "regression" / "diabetes.yaml"), *DOCTOR_OFF,
                    "--model.init_args.backbone", backbone, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.max_epochs", "1", "--trainer.num_sanity_val_steps", "0", "--test_after_fit", "false",
                    "--trainer.enable_progress_bar", "false", "--distributed.timeout", str(TIMEOUT),
                    "--distributed.rendezvous_timeout", str(RENDEZVOUS),
                    "--run_name", "hang", cwd=workdir)
    children: set[int] = set()
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            children |= {int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
                         .split()} if Path(f"/proc/{process.pid}").exists() else set()
            time.sleep(0.2)
    finally:
        kill_tree(process)
        for pid in children:  # rank 1, orphaned once rank 0 exited, still sleeping
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    output = process.log_path.read_text()  # type: ignore[attr-defined]
    assert process.returncode not in (None, 0), output[-3000:]
    stacks = workdir / "runs" / "diabetes" / "hang" / "stacks"
    rank0, rank1 = (stacks / "rank0.txt").read_text(), (stacks / "rank1.txt").read_text()
    assert "_engine_run_backward" in rank0 or "distributed" in rank0  # where rank 0's collective timed out
    assert re.search(r'test_stacks.py", line \d+ in forward', rank1), rank1  # rank 1 is in its sleep
    # The process group started with the rendezvous bound; the collectives waited the shorter one.
    assert f"Timed out waiting {TIMEOUT * 1000}ms" in output, output[-3000:]
    line = re.search(r"trainkit: hang forensics .*", output)
    assert line, output[-3000:]
    assert "rank 0 waits at " in line.group()
    assert re.search(r"rank 1 is elsewhere: forward at .*test_stacks.py:\d+", line.group()), line.group()

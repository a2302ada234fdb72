"""SIGKILL in the middle of an epoch, resume, and end with bitwise the same weights as an uninterrupted run.

Only the killed run needs a process of its own, a fork of this one; the uninterrupted run and the resume run
in-process (a fresh interpreter costs ~7 s of CPU before it trains), on one thread like the killed process (the same
float order)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from ._runs import SMALL_DIGITS, ForkedRun, last_metrics

# 2 epochs of 8 steps, last.ckpt every 4 steps: the first save (step 4) is in the middle of epoch 0, the last is the
# final state (step 16) in both runs. Dropout makes the result depend on the RNG stream, which must be restored too.
ARGS = ["fit", *SMALL_DIGITS, "--trainer.max_epochs", "2", "--checkpoint.every_n_train_steps", "4",
        "--test_after_fit", "false", "--model.init_args.drop_rate", "0.2"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_bitwise_identical_weights(workdir: Path, trainkit) -> None:  # noqa: ANN001
    killed = ForkedRun(*ARGS, "--run_name", "killed", cwd=workdir)
    last = workdir / "runs" / "digits" / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert last.exists(), "the run was killed before it saved its first checkpoint"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] % 8 != 0, "the checkpoint to resume from should be mid-epoch"
    assert saved["trainkit_resume"]["batches"] == saved["global_step"] % 8

    torch.set_num_threads(1)  # as in the killed process (OMP_NUM_THREADS=1)
    assert trainkit(*ARGS, "--run_name", "killed", "--ckpt_path", "last") == 0
    assert trainkit(*ARGS, "--run_name", "uninterrupted") == 0

    runs = workdir / "runs" / "digits"
    finals = [torch.load(runs / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
              for name in ("killed", "uninterrupted")]
    assert [final["global_step"] for final in finals] == [16, 16]
    ours, theirs = (final["state_dict"] for final in finals)
    assert ours.keys() == theirs.keys()
    different = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert not different, f"weights differ after resume: {different[:5]}"
    final_ours, final_theirs = last_metrics(runs / "killed"), last_metrics(runs / "uninterrupted")
    for name in ("val/loss", "val/acc", "epoch", "step"):
        assert final_ours[name] == final_theirs[name], name

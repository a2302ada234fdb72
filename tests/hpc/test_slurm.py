"""`trainkit slurm --submit` on a real one-node SLURM cluster: preempted mid-run, requeued, resumed, same result."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from ._runs import SMALL_DIGITS, env, last_metrics
from ._slurm import job_field, local_slurm, start_requeued_job, wait_until

# 3 epochs of 20 steps (long enough to be signalled mid-run), last.ckpt every 5 steps, then the test set.
ARGS = [*SMALL_DIGITS, "--trainer.limit_train_batches", "20", "--trainer.max_epochs", "3",
        "--checkpoint.every_n_train_steps", "5", "--test_after_fit", "true"]


@pytest.mark.slow
@pytest.mark.slurm
def test_preempted_slurm_job_requeues_resumes_and_matches_an_uninterrupted_run(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory, trainkit, capsys, monkeypatch  # noqa: ANN001
) -> None:
    with local_slurm(tmp_path_factory.mktemp("slurm")) as slurm_env:
        # Submitted in-process (a fresh interpreter is ~7 s of CPU); sbatch hands the job this environment.
        for key, value in (env() | {"SLURM_CONF": slurm_env["SLURM_CONF"]}).items():
            monkeypatch.setenv(key, value)
        code = trainkit("slurm", *ARGS, "--time", "00:15:00", "--submit")
        out, err = capsys.readouterr()
        assert code == 0, err[-3000:]
        job = re.search(r"submitted job (\d+)", out).group(1)  # type: ignore[union-attr]
        run = workdir / "runs" / "digits" / f"slurm_{job}"
        log = workdir / "runs" / "digits" / f"slurm_{job}.log"

        wait_until((run / "checkpoints" / "last.ckpt").exists, "the job's first checkpoint")
        subprocess.run(["scancel", "--signal=USR1", job], env=slurm_env, check=True)  # what SLURM sends before a limit
        wait_until(lambda: job_field(slurm_env, job, "Restarts") == "1", "the job to requeue itself")
        wait_until(lambda: job_field(slurm_env, job, "JobState") == "PENDING", "the requeued job to be pending")
        start_requeued_job(slurm_env, job)
        wait_until(lambda: job_field(slurm_env, job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED"),
              "the resumed job to finish", timeout=400)
        assert job_field(slurm_env, job, "JobState") == "COMPLETED", log.read_text()[-4000:]
    # The reference: outside SLURM, never interrupted; in-process (a fresh interpreter is ~7 s of CPU), on one thread
    # like the job's processes.
    torch.set_num_threads(1)
    assert trainkit("fit", *ARGS, "--run_name", "reference") == 0

    text = log.read_text()
    preempted = re.search(r"SIGUSR1 at epoch (\d+) step (\d+): saved (\S+); requeued SLURM job", text)
    assert preempted, text[-4000:]
    assert 0 < int(preempted.group(2)) < 60, "the signal should have arrived mid-run"
    assert "restart 1" in text and "Restored all states from the checkpoint" in text
    assert sorted(p.name for p in run.parent.iterdir() if p.is_dir()) == ["reference", run.name]  # no forked version_N
    ours, theirs = last_metrics(run), last_metrics(workdir / "runs" / "digits" / "reference")
    for name in ("test/acc", "test/loss", "test/f1", "val/acc", "val/loss", "step"):
        assert ours[name] == theirs[name], f"{name}: {ours[name]} after preemption vs {theirs[name]} uninterrupted"


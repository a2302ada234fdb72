"""`trainkit slurm --nodes 2 --submit` on a two-node SLURM cluster (a slurmd per network namespace): one job across
both nodes, preempted mid-run, requeued, resumed to the same final metrics as an uninterrupted two-node run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ._netns import INTERFACE, start_nodes, two_hosts, wait_all
from ._runs import SMALL_DIGITS, env, last_metrics
from ._slurm import job_field, start_requeued_job, two_node_slurm, wait_until

# 2 epochs of 12 steps per node at batch 16 (one process per node), last.ckpt every 3 steps; monitored on a metric
# that exists before the first validation, so that mid-epoch checkpoints are written from the start.
# 2 x 40 steps: on an idle machine 2 x 12 ended before the preemption signal sent at the first checkpoint arrived.
ARGS = [*SMALL_DIGITS, "--data.init_args.batch_size", "16", "--trainer.limit_train_batches", "40",
        "--trainer.max_epochs", "2", "--checkpoint.every_n_train_steps", "3", "--monitor", "train/loss_step",
        "--mode", "min", "--test_after_fit", "true", "--distributed.timeout", "120"]


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.netns
def test_two_node_job_is_preempted_requeued_and_resumes_to_the_uninterrupted_result(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory, trainkit, capsys  # noqa: ANN001
) -> None:
    with two_hosts() as hosts, two_node_slurm(tmp_path_factory.mktemp("slurm"), hosts) as slurm_env:
        ctl = tuple(hosts[0].command())
        field = lambda job, name: job_field(slurm_env, job, name, ctl)  # noqa: E731
        # The script is rendered in-process (a fresh interpreter is ~7 s of CPU) and submitted from the controller's
        # namespace, as `--submit` would there (tests/hpc/test_slurm.py submits with it); sbatch hands the job its
        # environment.
        assert trainkit("slurm", *ARGS, "--nodes", "2", "--time", "00:15:00") == 0
        script = re.search(r"sbatch script written to (\S+)", capsys.readouterr().out).group(1)  # type: ignore[union-attr]
        submitted = subprocess.run(
            [*ctl, "sbatch", "--parsable", script], cwd=workdir, capture_output=True, text=True, timeout=120,
            env=env() | {"SLURM_CONF": slurm_env["SLURM_CONF"], "GLOO_SOCKET_IFNAME": INTERFACE},
        )
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job = submitted.stdout.strip().split(";")[0]
        run = workdir / "runs" / "digits" / f"slurm_{job}"
        log = workdir / "runs" / "digits" / f"slurm_{job}.log"

        wait_until((run / "checkpoints" / "last.ckpt").exists, "the job's first checkpoint")
        subprocess.run([*ctl, "scancel", "--signal=USR1", job], env=slurm_env, check=True)  # both nodes' tasks
        wait_until(lambda: field(job, "Restarts") == "1", "the job to requeue itself")
        wait_until(lambda: field(job, "JobState") == "PENDING", "the requeued job to be pending")
        start_requeued_job(slurm_env, job, ctl)
        wait_until(lambda: field(job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED"), "the resumed job to finish",
              timeout=400)
        assert field(job, "JobState") == "COMPLETED", log.read_text()[-4000:]
        assert field(job, "NodeList") == "node[1-2]"
        # The uninterrupted reference: the same two nodes, started by hand after the job (2 cores for everything).
        reference = start_nodes(hosts, [*ARGS, "--trainer.accelerator", "cpu", "--trainer.num_nodes", "2",
                                        "--trainer.devices", "1", "--run_name", "reference"], workdir, 29541)
        codes = wait_all(reference, timeout=400)
        logs = [process.log_path.read_text()[-3000:] for process in reference]  # type: ignore[attr-defined]
        assert codes == [0, 0], f"exit codes {codes}:\n" + "\n".join(logs)

    text = log.read_text()
    preempted = re.search(r"SIGUSR1 at epoch (\d+) step (\d+): saved (\S+); requeued SLURM job", text)
    assert preempted, text[-4000:]
    assert 0 < int(preempted.group(2)) < 80, "the signal should have arrived mid-run"
    assert "restart 1" in text and "Restored all states from the checkpoint" in text
    assert text.count("All distributed processes registered. Starting with 2 processes") == 2
    ours, theirs = last_metrics(run), last_metrics(workdir / "runs" / "digits" / "reference")
    for name in ("test/acc", "test/loss", "val/acc", "val/loss", "step"):
        assert ours[name] == theirs[name], f"{name}: {ours[name]} after preemption vs {theirs[name]} uninterrupted"

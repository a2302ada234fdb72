"""The sbatch script of a `trainkit fit` run: resources, the pre-timeout signal, requeue and per-job logs; the job's
flags read apart from the run's, and the script submitted."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jsonargparse import ArgumentParser

from trainkit.errors import ConfigError


@dataclass
class SlurmJob:
    """Resources and scheduling of one SLURM job. Every field is a `trainkit slurm` flag (`--gpus_per_node 4`).

    Args:
        nodes: Nodes; each runs tasks_per_node training processes.
        gpus_per_node: GPUs per node; 0 for a CPU-only partition.
        tasks_per_node: Training processes per node (trainer.devices); by default one per GPU, or 1 without GPUs.
        cpus_per_task: CPU cores per process (data-loading workers + 1 is a good value); the partition's
            default when unset.
        mem: Memory per node, e.g. 64G; the partition's default when unset.
        time: Wall-time limit, HH:MM:SS or D-HH:MM:SS; the job is warned signal_seconds before it and requeues itself.
        partition: Partition (queue); the cluster's default when unset.
        account: Account to charge.
        job_name: Job name; trainkit-<experiment> when unset.
        signal_seconds: Seconds before the time limit at which SLURM sends SIGUSR1 (enough to save a checkpoint
            and requeue).
    """

    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    signal_seconds: int = 90

    @property
    def devices(self) -> int:
        """Training processes per node."""
        return self.tasks_per_node or max(self.gpus_per_node, 1)


def render_sbatch(job: SlurmJob, fit_args: list[str], experiment: str, log_dir: Path, workdir: Path,
                  command: str = "fit", array: int | None = None) -> str:
    """The sbatch script that runs `srun python -m trainkit COMMAND FIT_ARGS` with the job's processes and resume;
    with `array`, as that many array tasks (`trainkit tune` runners sharing one study)."""
    accelerator = "gpu" if job.gpus_per_node > 0 else "cpu"
    lines = [
        "#!/bin/bash",
        f"# Rendered by `trainkit slurm` on {datetime.now().isoformat(timespec='seconds')}; submit it with sbatch.",
        f"#SBATCH --job-name={job.job_name or f'trainkit-{experiment}'}",
        f"#SBATCH --nodes={job.nodes}",
        f"#SBATCH --ntasks-per-node={job.devices}",  # Lightning's SLURMEnvironment wants one task per device
    ]
    if array is not None:
        lines.append(f"#SBATCH --array=0-{array - 1}")  # each task has its own job id, so its own slurm_%j.log
    optional = {"gpus-per-node": job.gpus_per_node or None, "cpus-per-task": job.cpus_per_task, "mem": job.mem,
                "partition": job.partition, "account": job.account}
    lines += [f"#SBATCH --{key}={value}" for key, value in optional.items() if value is not None]
    lines += [
        f"#SBATCH --time={job.time}",
        # SIGUSR1 to every task (no B: prefix) signal_seconds before the limit: trainkit saves and requeues.
        f"#SBATCH --signal=SIGUSR1@{job.signal_seconds}",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",  # one log per job id, continued across requeues
        f"#SBATCH --output={log_dir.resolve()}/slurm_%j.log",
        f"#SBATCH --chdir={workdir.resolve()}",
        "",
        "set -euo pipefail",
        "export PYTHONUNBUFFERED=1",
        'echo "trainkit: job ${SLURM_JOB_ID} on $(hostname) at $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"',
        # --ckpt_path auto: the first start trains from scratch, a requeued one resumes from runs/.../slurm_<id>.
        "srun " + shlex.join([
            sys.executable, "-m", "trainkit", command, *fit_args,
            "--trainer.accelerator", accelerator,
            "--trainer.devices", str(job.devices),
            "--trainer.num_nodes", str(job.nodes),
            "--ckpt_path", "auto",
        ]),
        "",
    ]
    return "\n".join(lines)


def job_parser(prog: str = "trainkit slurm") -> ArgumentParser:
    """The parser of the job flags, one per SlurmJob field (`--gpus_per_node 4`)."""
    parser = ArgumentParser(prog=prog, exit_on_error=False)
    parser.add_class_arguments(SlurmJob, as_group=False)
    return parser


def split_job_flags(argv: list[str]) -> tuple[list[str], list[str], bool]:
    """The job's flags (--nodes, --gpus-per-node or --gpus_per_node, ...), the others (those of the command the job
    runs), and whether --submit was given."""
    names = {field.name for field in dataclasses.fields(SlurmJob)}
    job_args: list[str] = []
    rest: list[str] = []
    submit = False
    args = iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        name = flag.removeprefix("--").replace("-", "_")
        if flag == "--submit":
            submit = True
        elif flag.startswith("--") and name in names:
            job_args += [f"--{name}", value if has_value else next(args, "")]
        else:
            rest.append(arg)
    return job_args, rest, submit


def submit(script: Path) -> str:
    """Submit `script` with sbatch; returns the job id, or raises ConfigError with sbatch's reason in one line."""
    if shutil.which("sbatch") is None:
        raise ConfigError("sbatch is not installed here; run on a SLURM login node, or drop --submit and copy the "
                          "script there")
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
        raise ConfigError(f"sbatch refused {script}: {message}")
    return done.stdout.strip().split(";")[0]

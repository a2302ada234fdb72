"""What a process can tell about the SLURM job it runs in."""

from __future__ import annotations

import os


def slurm_job_id() -> str | None:
    """This SLURM batch job's id as scontrol names it (`123`, or `123_4` in an array), or None outside one."""
    if os.environ.get("SLURM_JOB_NAME") in (None, "bash", "interactive"):
        return None  # not a batch job (an salloc/srun shell): nothing to requeue and no stable job folder
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID")


def slurm_run_name() -> str | None:
    """Run folder name of this SLURM batch job, the same across its requeues (`slurm_<job id>`), or None."""
    job = slurm_job_id()
    return f"slurm_{job}" if job else None

"""What a process can tell about the SLURM job it runs in."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmLayout:
    """The process layout of a SLURM batch job, as Lightning reads it (None where SLURM does not say)."""

    nodes: int | None
    tasks: int | None
    tasks_per_node: int | None
    step_tasks: int | None  # set only in a process that srun started


def slurm_layout(environ: Mapping[str, str] = os.environ) -> SlurmLayout | None:
    """The layout of the SLURM batch job this process runs in, or None when Lightning will not take its process
    layout from SLURM (no SLURM_NTASKS, or an interactive salloc/srun shell)."""
    if "SLURM_NTASKS" not in environ or environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    nodes = _count(environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES"))
    tasks = _count(environ.get("SLURM_NTASKS"))
    per_node = _count(environ.get("SLURM_NTASKS_PER_NODE"))
    if per_node is None and tasks and nodes and tasks % nodes == 0:
        per_node = tasks // nodes
    return SlurmLayout(nodes, tasks, per_node, _count(environ.get("SLURM_STEP_NUM_TASKS")))


def _count(text: str | None) -> int | None:
    # SLURM writes repeated counts as "4(x2)"; the first number is the one for this node.
    match = re.match(r"\d+", text or "")
    return int(match.group()) if match else None


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

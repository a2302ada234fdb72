"""The one reader of a SLURM job's process layout (used by the doctor's preflight and the topology check)."""

from __future__ import annotations

from trainkit.hpc.slurm_env import SlurmLayout, slurm_layout


def test_the_layout_is_read_as_lightning_reads_it() -> None:
    job = {"SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NAME": "train"}
    assert slurm_layout(job) == SlurmLayout(nodes=2, tasks=8, tasks_per_node=4, step_tasks=None)
    step = job | {"SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "4(x2)", "SLURM_STEP_NUM_TASKS": "8"}
    assert slurm_layout(step) == SlurmLayout(nodes=2, tasks=8, tasks_per_node=4, step_tasks=8)
    assert slurm_layout(job | {"SLURM_JOB_NAME": "interactive"}) is None  # an salloc shell: Lightning ignores SLURM
    assert slurm_layout({}) is None

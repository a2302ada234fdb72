"""Cluster runs and fault tolerance: sbatch scripts, preemption, exact resume, safe checkpoints, FSDP, device peaks."""

from trainkit.hpc.atomic import checkpoint_problem, replace_atomically
from trainkit.hpc.devices import DEVICES, Device, device, device_from_cuda_name, measured_cpu_tflops
from trainkit.hpc.distributed_guard import DistributedGuard
from trainkit.hpc.exact_resume import ExactResume
from trainkit.hpc.fsdp import BlockFSDP, block_classes
from trainkit.hpc.preemption import Preempted, Preemption
from trainkit.hpc.sampler import ResumableSampler
from trainkit.hpc.slurm_env import slurm_job_id, slurm_run_name

__all__ = [
    "DEVICES", "Device", "device", "device_from_cuda_name", "measured_cpu_tflops",
    "BlockFSDP", "DistributedGuard", "ExactResume", "Preempted", "Preemption", "ResumableSampler", "block_classes",
    "checkpoint_problem", "replace_atomically", "slurm_job_id", "slurm_run_name",
]

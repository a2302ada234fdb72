"""Preflight checks of the Trainer settings: each problem is one line naming the value and the fix."""

from __future__ import annotations

import pytest
import torch

from trainkit.doctor.preflight import check_trainer_config

CPU = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "strategy": "auto", "num_nodes": 1}
SLURM_JOB = {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "train"}


def test_a_plain_cpu_run_passes() -> None:
    assert check_trainer_config(CPU, environ={}) == []


def test_fsdp_on_cpu_is_one_line_with_the_fix() -> None:
    [problem] = check_trainer_config({**CPU, "strategy": "fsdp"}, environ={})
    assert "trainer.strategy=fsdp needs CUDA" in problem and "--trainer.strategy ddp" in problem
    assert "\n" not in problem


def test_fp16_on_cpu_is_caught() -> None:
    [problem] = check_trainer_config({**CPU, "precision": "16-mixed"}, environ={})
    assert "not supported on CPU" in problem and "--trainer.precision bf16-mixed" in problem


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_asked_for_where_there_is_none() -> None:
    problems = check_trainer_config({**CPU, "accelerator": "gpu"}, environ={})
    assert problems and "no CUDA GPU is visible" in problems[0]


def test_misspelled_strategy_gets_a_suggestion() -> None:
    [problem] = check_trainer_config({**CPU, "strategy": "ddp_spwn"}, environ={})
    assert "did you mean ddp_spawn" in problem


def test_slurm_topology_must_match_devices_and_nodes() -> None:
    assert check_trainer_config({**CPU, "devices": 2, "num_nodes": 2}, environ=SLURM_JOB) == []
    devices, nodes = check_trainer_config(CPU, environ=SLURM_JOB)
    assert "2 task(s) per node but trainer.devices=1" in devices and "--trainer.devices 2" in devices
    assert "2 node(s) but trainer.num_nodes=1" in nodes and "--trainer.num_nodes 2" in nodes


def test_slurm_tasks_per_node_derived_from_ntasks() -> None:
    env = {"SLURM_NTASKS": "8", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "train"}
    [problem] = check_trainer_config({**CPU, "devices": 2, "num_nodes": 2}, environ=env)
    assert "4 task(s) per node" in problem


def test_interactive_slurm_shell_is_not_a_job() -> None:
    assert check_trainer_config(CPU, environ={**SLURM_JOB, "SLURM_JOB_NAME": "bash"}) == []

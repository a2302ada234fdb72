"""configs/trainer/fsdp.yaml resolves to BlockFSDP wrapping the backbone's repeated blocks (a real FSDP fit needs
CUDA: see the gpu test below and docs/hpc.md for the numbers measured on an H100)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from timm.models.resnet import BasicBlock
from timm.models.vision_transformer import Block

from trainkit.cli import TrainkitCLI
from trainkit.hpc import BlockFSDP, block_classes

from ._runs import DIGITS_CONFIG, REPO, env

FSDP = REPO / "configs" / "trainer" / "fsdp.yaml"


def _cli(*args: str) -> TrainkitCLI:
    return TrainkitCLI(args=["--config", str(DIGITS_CONFIG), "--config", str(FSDP), *args], run=False)


def test_fsdp_config_wraps_each_resnet_block_with_full_state_dicts(workdir: Path) -> None:
    cli = _cli("--model.init_args.backbone", "test_resnet", "--trainer.accelerator", "cpu")
    strategy = cli.trainer.strategy
    assert isinstance(strategy, BlockFSDP)
    assert strategy._state_dict_type == "full" and not strategy.activation_checkpointing
    assert strategy.sharding_strategy.name == "FULL_SHARD"
    policy = strategy.wrap_policy(cli.model)
    assert policy is not None and policy._module_classes == {BasicBlock}
    assert sum(isinstance(m, BasicBlock) for m in cli.model.modules()) == 3  # test_resnet: one FSDP unit per block


def test_fsdp_options_from_flags_and_vit_blocks(workdir: Path) -> None:
    cli = _cli("--model.init_args.backbone", "test_vit", "--model.init_args.backbone_kwargs", "{img_size: 16}",
               "--trainer.strategy.init_args.activation_checkpointing", "true",
               "--trainer.strategy.init_args.state_dict_type", "sharded", "--trainer.accelerator", "cpu")
    strategy = cli.trainer.strategy
    assert strategy.activation_checkpointing and strategy._state_dict_type == "sharded"
    assert block_classes(cli.model) == {Block}
    # Stages of blocks are not wrapped again: only the innermost repeated level counts.
    stages = torch.nn.Sequential(*(torch.nn.Sequential(Block(8, 2), Block(8, 2)) for _ in range(2)))
    assert block_classes(stages) == {Block}


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="a real FSDP fit needs CUDA")
def test_fsdp_bf16_fit_on_cuda_saves_and_resumes(workdir: Path) -> None:
    args = [sys.executable, "-m", "trainkit", "fit", "--config", str(DIGITS_CONFIG), "--config", str(FSDP),
            "--config", str(REPO / "configs" / "trainer" / "bf16.yaml"), "--trainer.max_epochs", "2",
            "--trainer.limit_train_batches", "5", "--trainer.enable_progress_bar", "false", "--run_name", "fsdp"]
    first = subprocess.run(args, cwd=workdir, env=env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    more = [*args[:-2], "--run_name", "fsdp", "--trainer.max_epochs", "3", "--ckpt_path", "last"]
    # A longer schedule than the checkpoint's would break the one-cycle total; resume with the constant LR instead.
    more += ["--model.init_args.scheduler", "null"]
    resumed = subprocess.run(more, cwd=workdir, env=env() | {"CUDA_VISIBLE_DEVICES": os.environ.get(
        "CUDA_VISIBLE_DEVICES", "0")}, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr

"""configs/trainer/fsdp.yaml resolves to BlockFSDP wrapping the backbone's repeated blocks (a real FSDP fit needs
CUDA: see the gpu test below and docs/hpc.md for the numbers measured on an H100)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from timm.models.resnet import BasicBlock
from timm.models.vision_transformer import Block

from trainkit.cli import TrainkitCLI
from trainkit.hpc import BlockFSDP, block_classes

from ._runs import DIGITS_CONFIG, REPO, finish, last_metrics, start

FSDP = REPO / "configs" / "trainer" / "fsdp.yaml"


def _cli(*args: str) -> TrainkitCLI:
    # The preflight refuses FSDP on CPU (the user-facing check); these tests only inspect how the config resolves.
    return TrainkitCLI(args=["--config", str(DIGITS_CONFIG), "--config", str(FSDP), "--doctor.preflight", "false",
                             *args], run=False)


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
def test_fsdp_bf16_fit_on_cuda_killed_mid_epoch_resumes_to_the_same_result(workdir: Path) -> None:
    args = ["fit", "--config", str(DIGITS_CONFIG), "--config", str(FSDP), "--config",
            str(REPO / "configs" / "trainer" / "bf16.yaml"), "--trainer.max_epochs", "2",
            "--trainer.limit_train_batches", "10", "--checkpoint.every_n_train_steps", "5", "--test_after_fit", "false",
            "--trainer.enable_progress_bar", "false"]
    reference = start(*args, "--run_name", "reference", cwd=workdir)
    killed = start(*args, "--run_name", "killed", cwd=workdir)
    last = workdir / "runs" / "digits" / "killed" / "checkpoints" / "last.ckpt"
    while not last.exists() and killed.poll() is None:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    finish(start(*args, "--run_name", "killed", "--ckpt_path", "last", cwd=workdir))
    finish(reference)
    ours, theirs = (last_metrics(workdir / "runs" / "digits" / name) for name in ("killed", "reference"))
    assert ours["step"] == theirs["step"] == 19
    # cuDNN picks kernels per run and bf16 rounds coarsely: close, not bitwise, on CUDA.
    assert ours["val/loss"] == pytest.approx(theirs["val/loss"], abs=0.05)

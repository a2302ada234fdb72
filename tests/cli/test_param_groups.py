"""Discriminative LR and layer-wise LR decay through `trainkit fit`: the preflight builds the optimizer
as `configure_optimizers` does, so these run, and the trained groups carry the LRs asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import DIGITS_CONFIG, tiny_argv

# One batch each way and no schedule: the checkpoint's group LRs are the configured ones.
ONE_BATCH = tiny_argv(DIGITS_CONFIG, "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
                      "--model.init_args.optimizer.lr", "0.01", "--model.init_args.scheduler", "null",
                      "--test_after_fit", "false", limit_train_batches=1, limit_val_batches=1)


def _group_lrs(workdir: Path) -> list[float]:
    state = torch.load(workdir / "runs/digits/version_0/checkpoints/last.ckpt", weights_only=False)
    return [group["lr"] for group in state["optimizer_states"][0]["param_groups"]]


def test_backbone_lr_scale_trains_the_backbone_at_a_tenth(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *ONE_BATCH, "--model.init_args.optimizer.backbone_lr_scale", "0.1") == 0
    assert sorted(set(map(lambda lr: round(lr, 12), _group_lrs(workdir)))) == [0.001, 0.01]


def test_layer_decay_gives_each_layer_its_lr(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *ONE_BATCH, "--model.init_args.optimizer.layer_decay", "0.5") == 0
    lrs = sorted({round(lr, 12) for lr in _group_lrs(workdir)}, reverse=True)
    # test_resnet's timm layer map: stem, 4 stages, head -> the head at lr, each layer below at half the one above.
    assert lrs[0] == pytest.approx(0.01) and len(lrs) >= 3
    assert all(lower / upper == pytest.approx(0.5) for upper, lower in zip(lrs, lrs[1:], strict=False))


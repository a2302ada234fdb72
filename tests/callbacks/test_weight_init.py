"""Weight initialisation schemes: the statistics each promises, and the CLI flag on a real fit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import TINY_DIGITS
from trainkit.callbacks.weight_init import WeightInit, init_weights
from trainkit.errors import ConfigError


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(16, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(), nn.Linear(256, 128))


def test_kaiming() -> None:
    model = net()
    assert init_weights(model, "kaiming") == 2
    conv, linear = model[0], model[4]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)  # fan_out for convs
    assert linear.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)  # fan_in for linear layers
    assert conv.bias.abs().sum() == 0 and linear.bias.abs().sum() == 0


def test_xavier_and_normal() -> None:
    model = net()
    init_weights(model, "xavier")
    bound = math.sqrt(6 / (256 + 128))
    assert model[4].weight.abs().max().item() <= bound
    assert model[4].weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # uniform(-b, b)
    init_weights(model, "normal", std=0.02)
    assert model[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model[4].weight.mean().item() == pytest.approx(0.0, abs=0.002)
    assert torch.equal(model[1].weight, torch.ones(64)) and torch.equal(model[1].bias, torch.zeros(64))


def test_default_leaves_weights_alone() -> None:
    model = net()
    before = [p.clone() for p in model.parameters()]
    assert init_weights(model, "default") == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_cli_flag_initialises_before_training(workdir: Path, trainkit) -> None:  # noqa: ANN001
    args = [*TINY_DIGITS, "--trainer.max_steps", "1", "--model.init_args.optimizer.lr", "0",
            "--model.init_args.scheduler.name", "constant", "--doctor.preflight", "false",  # lr 0 cannot overfit
            "--test_after_fit", "false"]
    assert trainkit("fit", *args, "--weight_init.scheme", "normal", "--weight_init.std", "0.05") == 0
    state = torch.load(workdir / "runs/digits/version_0/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    convs = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 4]
    assert torch.cat([c.flatten() for c in convs]).std().item() == pytest.approx(0.05, rel=0.05)  # lr 0: as set
    assert trainkit("fit", *args, "--weight_init.scheme", "kaimin") == 2


def test_refuses_to_overwrite_pretrained_weights() -> None:
    from tests.optim._tiny import TinyTask

    model = TinyTask()
    model.hparams["pretrained"] = True  # as a task built with pretrained=True records it
    with pytest.raises(ConfigError, match="--weight_init.scheme kaiming would overwrite the pretrained weights"):
        WeightInit("kaiming").setup(None, model, "fit")  # type: ignore[arg-type]
    WeightInit("kaiming").setup(None, model, "test")  # evaluating a checkpoint never re-initialises

"""Optimizers by name, weight-decay exclusion, discriminative LR and layer-wise decay on real models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.optim._tiny import TinyTask, fit
from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig
from trainkit.tasks import ClassificationModule

NAMED = ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "lion", "lamb", "lars"]


@pytest.mark.parametrize("name", NAMED)
def test_each_optimizer_trains(name: str) -> None:
    """Every named optimizer is built by timm and lowers the loss of a small regression in 30 steps."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)
    optimizer = OptimizerConfig(name=name, lr=0.01, weight_decay=0.0).build(model)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.9 * losses[0]


def test_sgd_momentum_and_nesterov_are_settable() -> None:
    net = torch.nn.Linear(2, 2)
    plain = OptimizerConfig(name="sgd", momentum=0.8, nesterov=False).build(net)
    assert isinstance(plain, torch.optim.SGD)
    assert plain.param_groups[0]["momentum"] == 0.8 and plain.param_groups[0]["nesterov"] is False
    assert OptimizerConfig(name="sgd", nesterov=True).build(net).param_groups[0]["nesterov"] is True
    with pytest.raises(ConfigError, match="nesterov applies to momentum optimizers"):
        OptimizerConfig(name="adamw", nesterov=True).build(net)


def test_sgd_without_momentum_is_plain_sgd() -> None:
    """timm's `sgd` is Nesterov, which torch refuses at momentum 0: momentum 0 means plain SGD."""
    net = torch.nn.Linear(2, 1)
    plain = OptimizerConfig(name="sgd", lr=0.1, momentum=0, weight_decay=0.0).build(net)
    assert plain.param_groups[0]["momentum"] == 0 and plain.param_groups[0]["nesterov"] is False
    before = net.weight.detach().clone()
    net(torch.ones(1, 2)).sum().backward()
    plain.step()
    assert torch.allclose(net.weight, before - 0.1)  # one plain step: w - lr * grad, the gradient being 1
    with pytest.raises(ConfigError, match="nesterov=true needs momentum > 0"):
        OptimizerConfig(name="sgd", momentum=0, nesterov=True).build(net)


def test_unknown_optimizer_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        OptimizerConfig(name="adamx")
    message = str(error.value)
    assert message.startswith("optimizer 'adamx' is not known; did you mean")
    assert all(f" {name}," in message or message.endswith(f" {name}") for name in NAMED)


def test_biases_and_norms_get_no_weight_decay() -> None:
    model = ClassificationModule(backbone="test_resnet", num_classes=10, in_chans=1)
    groups = OptimizerConfig(weight_decay=0.05).build(model).param_groups
    decay = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
    for name, param in model.named_parameters():
        expected = 0.0 if param.ndim <= 1 else 0.05
        assert decay[id(param)] == expected, name
    everything = OptimizerConfig(weight_decay=0.05, no_decay_bias_norm=False).build(model).param_groups
    assert {group["weight_decay"] for group in everything} == {0.05}


def test_discriminative_lr_splits_backbone_and_head() -> None:
    model = ClassificationModule(backbone="test_resnet", num_classes=10, in_chans=1)
    config = OptimizerConfig(lr=1e-3, backbone_lr_scale=0.1)
    optimizer = config.build(model, split=model.backbone_and_head())
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    head = model.net.get_classifier()
    for name, param in model.named_parameters():
        expected = 1e-3 if any(param is p for p in head.parameters()) else 1e-4
        assert lr_of[id(param)] == pytest.approx(expected), name
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # the head's LR is group 0 (logged as train/lr)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_layer_decay_follows_timm_layer_map() -> None:
    model = ClassificationModule(backbone="test_resnet", num_classes=10, in_chans=1)
    optimizer = OptimizerConfig(lr=1.0, layer_decay=0.5).build(model, split=model.backbone_and_head())
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    net = model.net
    assert lr_of[id(net.fc.weight)] == 1.0  # the head at the full LR
    stem, deepest = lr_of[id(net.conv1[0].weight)], lr_of[id(net.layer4[0].conv1.weight)]
    assert stem < deepest < 1.0
    layers = sorted(set(lr_of.values()))
    assert all(b / a == pytest.approx(2.0) for a, b in zip(layers, layers[1:], strict=False))  # x0.5 per layer
    assert stem == pytest.approx(0.5 ** (len(layers) - 1))


def test_layer_decay_needs_a_timm_model() -> None:
    with pytest.raises(ConfigError, match="layer_decay=0.7 needs a timm backbone"):
        TinyTask(OptimizerConfig(layer_decay=0.7)).configure_optimizers()
    with pytest.raises(ConfigError, match="backbone_lr_scale=0.1 needs a backbone/head split"):
        TinyTask(OptimizerConfig(backbone_lr_scale=0.1)).configure_optimizers()


def test_discriminative_lr_follows_the_schedule() -> None:
    """Both groups keep their 10:1 ratio through the schedule of a real run."""
    from trainkit.optim import SchedulerConfig

    class SplitTask(TinyTask):
        def backbone_and_head(self):  # noqa: ANN202
            return self.net, None  # the whole linear layer is the "backbone" here; the test only needs two LRs

    model = SplitTask(OptimizerConfig(name="adamw", lr=0.1, backbone_lr_scale=0.1), SchedulerConfig(name="cosine"))
    model.extra = torch.nn.Linear(1, 1)  # a head-like parameter outside the split, at the full LR
    lrs = fit(model, epochs=1).lrs
    assert [len(row) for row in lrs] == [4] * 10  # (head, backbone) x (decay, no decay)
    for row in lrs:
        assert sorted(row)[-1] == pytest.approx(10 * sorted(row)[0])


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--model.optimizer.name=adamx", "optimizer 'adamx' is not known; did you mean"),
     ("--model.scheduler.name=cosin", "scheduler 'cosin' is not known; did you mean cosine")],
)
def test_unknown_names_are_one_line_cli_errors(flag: str, expected: str, workdir, trainkit, capsys) -> None:  # noqa: ANN001
    from tests.conftest import TINY_DIGITS

    assert trainkit("fit", *TINY_DIGITS, flag) == 2  # refused while the config is read: nothing trains
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"trainkit: error: {expected}") and "choose one of:" in error
    assert "\n" not in error
    assert not (workdir / "runs").exists()

"""Layer health: per-block statistics on logging steps only, and the doctor naming a dead ReLU block and vanishing
gradients in networks built to have them, each trained through `trainkit fit` on the diabetes table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from tests.conftest import REPO, tiny_argv
from tests.tiny_runs import train_tiny
from trainkit.callbacks import LayerHealth
from trainkit.doctor.curves import read_metrics
from trainkit.doctor.report import examine

DIABETES = REPO / "configs" / "regression" / "diabetes.yaml"


class Stack(nn.Module):
    """`depth` Linear + activation blocks on the diabetes table's 10 features, then a linear output."""

    def __init__(self, depth: int = 3, width: int = 32, activation: str = "relu", dead_block: int | None = None,
                 out_features: int = 1) -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(10 if i == 0 else width, width), act())
                                    for i in range(depth))
        if dead_block is not None:
            with torch.no_grad():  # every pre-activation far below 0: the ReLU outputs 0 and passes no gradient back
                self.blocks[dead_block][0].bias.fill_(-20.0)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _fit_and_diagnose(trainkit, workdir: Path, **network: object) -> tuple[dict, list[str]]:  # noqa: ANN001
    """Train `Stack(**network)` for one epoch (9 steps) with layer health every step; its metrics and the doctor's
    findings."""
    backbone = {"class_path": "tests.callbacks.test_layer_health.Stack", "init_args": network}
    args = tiny_argv(DIABETES, "--model.init_args.backbone", str(backbone).replace("'", '"'),
                     "--layer_health.every_n_steps", "1", "--doctor.diagnose", "true", "--test_after_fit", "false",
                     "--model.init_args.dropout", "0.0", epochs=1, log_every_n_steps=1, limit_val_batches=1)
    assert trainkit("fit", *args) == 0
    run = next((workdir / "runs" / "diabetes").iterdir())
    report = examine(run, write=False)
    assert (run / "layers.png").is_file() and "layers.png" in (run / "doctor.md").read_text()
    return read_metrics(run), [f"{finding.case}: {finding.evidence}" for finding in report.findings]


def test_the_doctor_names_a_dead_relu_block(workdir: Path, trainkit) -> None:  # noqa: ANN001
    metrics, findings = _fit_and_diagnose(trainkit, workdir, dead_block=1)
    assert metrics["layers/net.blocks.1/dead_frac"].values.min() == 1.0
    # Its input is all zeros, so only its units with a positive bias pass anything on: about half, not dead.
    assert 0.2 < metrics["layers/net.blocks.2/dead_frac"].values.max() < 0.8
    # Nothing flows back through the dead block: the block before it gets exactly zero gradient.
    assert metrics["layers/net.blocks.0/grad_norm"].values.max() == 0.0
    assert metrics["layers/net.blocks.2/grad_norm"].values.min() > 0.0
    dead = [line for line in findings if line.startswith("dead_layer")]
    assert dead and "net.blocks.1: 100% of its ReLU units dead" in dead[0], findings
    assert "net.blocks.2" not in dead[0]
    assert not any(line.startswith("vanishing_grads") for line in findings)  # the dead block explains it


def test_the_doctor_names_vanishing_gradients_in_a_deep_sigmoid_stack(workdir: Path, trainkit) -> None:  # noqa: ANN001
    metrics, findings = _fit_and_diagnose(trainkit, workdir, depth=8, activation="sigmoid")
    first, last = (float(metrics[f"layers/net.blocks.{i}/grad_norm"].values.mean()) for i in (0, 7))
    assert 0 < first < 1e-3 * last
    assert any(line.startswith("vanishing_grads") and "first block net.blocks.0" in line for line in findings), findings
    assert not any(line.startswith(("dead_layer", "exploding_grads")) for line in findings)


class HookProbe(Callback):
    """Records, after each forward, whether any forward hook was attached at that step."""

    def __init__(self) -> None:
        self.hooked: dict[int, bool] = {}

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        self.hooked[trainer.global_step] = any(module._forward_hooks for module in pl_module.modules())


def test_hooks_are_attached_on_logging_steps_only(tmp_path: Path) -> None:
    health = LayerHealth(every_n_steps=5, depth=2)
    probe = HookProbe()
    run = train_tiny(tmp_path, epochs=1, callbacks=[health, probe], limit_train_batches=12, limit_val_batches=1)
    # The digits MLP (Flatten, Linear, ReLU, Linear) at depth 2: its layers with weights and its ReLU.
    assert [name for name, _ in health.blocks] == ["net.1", "net.2", "net.3"]
    assert [step for step, on in probe.hooked.items() if on] == [4, 9]
    assert not any(module._forward_hooks for module in run.model.modules())  # all removed again
    metrics = read_metrics(run.run_dir)
    assert metrics["layers/net.1/grad_norm"].steps.tolist() == [4, 9]
    assert "layers/net.2/grad_norm" not in metrics  # a ReLU has no weights
    assert 0 <= metrics["layers/net.2/dead_frac"].values.min() < 0.5  # a healthy MLP keeps most units alive
    assert (metrics["layers/net.3/act_std"].values > 0).all()


def test_bad_settings_are_one_line_errors() -> None:
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError, match="every_n_steps must be >= 0"):
        LayerHealth(every_n_steps=-1)

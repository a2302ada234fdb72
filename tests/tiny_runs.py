"""Tiny real training runs for the doctor's tests: an MLP on the 8x8 digits, a few hundred steps in seconds.

Each curve case comes from a real cause: a huge LR, a tiny one, shuffled val labels, a frozen model, a batch
multiplied by Inf or by 1e3, too little data. `python -m tests.tiny_runs` trains every one of them and records its
metrics.csv in tests/doctor/curves/NAME/, which the diagnosis tests read (two of them also train for real)."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from trainkit.callbacks import NonFiniteGuard, TrainingMonitor
from trainkit.data import DigitsDataModule
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.tasks import ClassificationModule


class LogitShift(nn.Module):
    """Adds one trainable scalar to every logit: softmax ignores it, so its gradient is exactly zero."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


class BatchTamper(Callback):
    """Multiplies the inputs of training batch `at_step` by `factor` (inf injects NaN/Inf, 1e3 makes outliers)."""

    def __init__(self, at_step: int, factor: float) -> None:
        self.at_step, self.factor = at_step, factor

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            batch[0].mul_(self.factor)


def mlp(hidden: int = 64, frozen: bool = False) -> nn.Module:
    """A two-layer MLP (linear for `hidden=0`) on flattened 8x8 digits; `frozen` leaves only a gradient-free logit
    shift trainable."""
    layers = [nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)] if hidden else [nn.Linear(64, 10)]
    net = nn.Sequential(nn.Flatten(), *layers)
    if frozen:
        net.requires_grad_(False)
        net.append(LogitShift())
    return net


@dataclass
class TinyRun:
    """A finished tiny run: its trainer, model and run folder."""

    trainer: Trainer
    model: ClassificationModule
    run_dir: Path


def run_tiny(root: Path, **kwargs: Any) -> Path:
    """Train for real (see `train_tiny`) and return the run folder holding metrics.csv."""
    return train_tiny(root, **kwargs).run_dir


def train_tiny(
    root: Path,
    optimizer: str = "adamw",
    lr: float = 1e-3,
    epochs: int = 4,
    batch_size: int = 32,
    hidden: int = 64,
    frozen: bool = False,
    train_subset: int | None = None,
    shuffle_val_labels: bool = False,
    callbacks: list[Callback] | None = None,
    log_every: int = 1,
    weight_decay: float = 0.0,
    warmup: float | None = None,
    name: str = "run",
    **trainer_kwargs: Any,
) -> TinyRun:
    """Train the digits MLP for real with the given defects; extra keyword arguments go to the Trainer."""
    torch.manual_seed(0)
    data = DigitsDataModule(batch_size=batch_size, image_size=None, in_chans=1)
    data.setup()
    if train_subset is not None:
        train = data.splits["train"]
        train.images, train.labels = train.images[:train_subset], train.labels[:train_subset]
    if shuffle_val_labels:
        val = data.splits["val"]
        val.labels = val.labels[torch.randperm(len(val.labels), generator=torch.Generator().manual_seed(1))]
    model = ClassificationModule(
        backbone=mlp(hidden, frozen), num_classes=10, in_chans=1,
        optimizer=OptimizerConfig(name=optimizer, lr=lr, weight_decay=weight_decay),
        scheduler=SchedulerConfig(name="constant", warmup=warmup) if warmup else None,
    )
    logger = CSVLogger(save_dir=str(root), name=name, version=0)
    settings = dict(enable_checkpointing=False, num_sanity_val_steps=0, enable_progress_bar=False,
                    enable_model_summary=False, accelerator="cpu", devices=1)
    callbacks = list(callbacks or [])
    if not any(isinstance(c, TrainingMonitor) for c in callbacks):
        callbacks.append(TrainingMonitor())  # on in every trainkit fit, so on here
    trainer = Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=log_every, callbacks=callbacks,
                      **{**settings, **trainer_kwargs})
    trainer.fit(model, datamodule=data)
    return TinyRun(trainer, model, Path(logger.log_dir))



# case -> the defect that produces it (keyword arguments of train_tiny)
CASE_RUNS: dict[str, dict[str, Any]] = {
    # Adam warming up into LR 0.3: the loss falls while the LR is small, then climbs back up.
    "diverging": dict(lr=0.3, warmup=0.99),
    # Adam at 3e-5: four epochs move the loss by a few percent, steadily.
    "slow": dict(lr=3e-5),
    # Plain SGD at LR 10 on a linear model: it bounces instead of settling.
    "oscillating": dict(optimizer="sgd", lr=10.0, hidden=0),
    # Validation labels permuted: training learns, validation cannot follow.
    "val_flat": dict(shuffle_val_labels=True),
    # Every weight frozen; the one trainable scalar shifts all logits, which softmax ignores.
    "flat": dict(frozen=True),
    # One batch multiplied by Inf at step 60; the guard skips that step so the run goes on.
    "nan": dict(callbacks=lambda: [BatchTamper(60, math.inf), NonFiniteGuard("skip")]),
    # One batch multiplied by 1e3 at step 100: an outlier batch.
    "jump": dict(callbacks=lambda: [BatchTamper(100, 1e3)]),
    # 64 training images, a wide MLP, 30 epochs: validation loss turns up after about epoch 10.
    "overfitting": dict(train_subset=64, hidden=512, epochs=30, lr=3e-3),
}
"""Callbacks are given as a factory: a recorded run and a test's real run each get fresh ones."""

HEALTHY_RUNS: dict[str, dict[str, Any]] = {
    "adamw": dict(),
    "converged": dict(epochs=8, log_every=5, weight_decay=0.05),
    "sgd": dict(optimizer="momentum", lr=0.05),
}

RECORDED = Path(__file__).resolve().parent / "doctor" / "curves"


def run_case(root: Path, name: str) -> Path:
    """Train the run named `name` (a key of CASE_RUNS or HEALTHY_RUNS) for real; return its run folder."""
    kwargs = dict({**CASE_RUNS, **HEALTHY_RUNS}[name])
    if callable(kwargs.get("callbacks")):
        kwargs["callbacks"] = kwargs["callbacks"]()
    return run_tiny(root, **kwargs)


def record() -> None:
    """Train every case and healthy run once and keep its metrics.csv under tests/doctor/curves/."""
    with tempfile.TemporaryDirectory() as scratch:
        for name in [*CASE_RUNS, *HEALTHY_RUNS]:
            run = run_case(Path(scratch) / name, name)
            (RECORDED / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / "metrics.csv", RECORDED / name / "metrics.csv")
            print(f"recorded {RECORDED / name / 'metrics.csv'}")


if __name__ == "__main__":
    record()

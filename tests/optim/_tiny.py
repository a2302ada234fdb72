"""A tiny task on random tensors and an LR recorder, for driving the real Trainer in a second or two."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.tasks import TaskModule


class TinyTask(TaskModule):
    """Two-class logistic regression on 4 features."""

    def __init__(self, optimizer: OptimizerConfig | None = None, scheduler: SchedulerConfig | None = None) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.net = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/const", 1.0, on_epoch=True, on_step=False)  # a metric that never improves
        return F.cross_entropy(logits, y), logits, y


def loader(samples: int = 40, batch_size: int = 4) -> DataLoader:
    """`samples` random points in `samples / batch_size` batches."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 4, generator=generator)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=batch_size)


class LRRecorder(Callback):
    """The LR of every param group at every optimizer step (the LR that step used)."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        self.lrs.append([group["lr"] for group in optimizer.param_groups])

    @property
    def first_group(self) -> list[float]:
        """LR of param group 0 at each optimizer step."""
        return [row[0] for row in self.lrs]


def fit(model: LightningModule, epochs: int = 2, val: bool = False, **trainer_kwargs: Any) -> LRRecorder:
    """Fit on 10 batches per epoch with a real CPU Trainer; returns the recorded LRs."""
    recorder = LRRecorder()
    callbacks = [recorder, *trainer_kwargs.pop("callbacks", [])]
    settings = {
        "max_epochs": epochs, "accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
        "enable_model_summary": False, "enable_checkpointing": False, "limit_val_batches": 2 if val else 0,
        "num_sanity_val_steps": 0, **trainer_kwargs,
    }
    trainer = Trainer(callbacks=callbacks, **settings)
    trainer.fit(model, train_dataloaders=loader(), val_dataloaders=loader(8) if val else None)
    return recorder

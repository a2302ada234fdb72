"""The throttled progress bar reads the logged metrics a few times a second, not after every step."""

from __future__ import annotations

import io

import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit.callbacks import ThrottledProgressBar
from trainkit.tasks import ClassificationModule


class _CountingBar(ThrottledProgressBar):
    reads = 0
    etas: list[str | None]

    def get_metrics(self, trainer, pl_module):  # noqa: ANN001, ANN201
        self.reads += 1
        shown = super().get_metrics(trainer, pl_module)
        self.etas = [*getattr(self, "etas", []), shown.get("eta")]
        return shown


def _fit(interval: float) -> _CountingBar:
    data = TensorDataset(torch.randn(40, 4), torch.arange(40) % 3)
    model = ClassificationModule(nn.Linear(4, 3), num_classes=3)
    bar = _CountingBar(interval=interval)
    Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False,
            log_every_n_steps=2, callbacks=[bar]).fit(model, DataLoader(data, batch_size=4))
    return bar


def test_bar_reads_metrics_once_per_interval_and_at_the_end() -> None:
    every_step, throttled = _fit(interval=0), _fit(interval=3600)
    assert every_step.reads == 10 + 1  # interval 0 behaves like Lightning's bar: each of 10 steps, then the epoch end
    assert throttled.reads == 2 + 1  # only the first and the last step, then the epoch end
    # The fit's time left, first among the metrics from the first logging step on (refreshed on logging steps).
    assert all(eta is not None for eta in every_step.etas[2:]), every_step.etas


def test_bar_stays_on_one_line_at_80_columns_and_counts_epochs_from_1() -> None:
    from rich.console import Console

    data = TensorDataset(torch.randn(40, 4), torch.arange(40) % 3)
    model = ClassificationModule(nn.Linear(4, 3), num_classes=3)
    bar = ThrottledProgressBar(interval=0)
    Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False, enable_model_summary=False,
            callbacks=[bar]).fit(model, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    shown = bar.get_metrics(bar.trainer, model)
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= set(shown), shown  # enough metrics to overflow 80
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(bar.progress.make_tasks_table([bar.progress.tasks[bar.train_progress_bar_id]]))
    lines = console.export_text().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Epoch 2/2") and "train/loss: " in lines[0] and len(lines[0]) <= 80
    assert "…" in lines[0] or "val/f1: " in lines[0]  # cut at the edge, not wrapped onto more lines

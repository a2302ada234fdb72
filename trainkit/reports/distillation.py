"""Distillation report: the classification report of the student, and teacher against student in parameters,
test accuracy and latency per batch."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainkit.reports._plot import pyplot, save, write_csv
from trainkit.reports.classification import ClassificationReport

TIMED_PASSES = 5


class DistillationReport(ClassificationReport):
    """The student's classification report, plus distillation.csv and distillation.png."""

    def __init__(self) -> None:
        super().__init__()
        self.timing_batch: Tensor | None = None

    def update(self, task: Any, batch: Any, preds: Tensor, target: Tensor) -> None:
        super().update(task, batch, preds, target)
        if self.timing_batch is None and isinstance(batch, list | tuple):
            self.timing_batch = batch[0].detach()

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        paths = super().write(task, data, out_dir)
        metrics = task.trainer.callback_metrics
        models = {"teacher": task.teacher, "student": task.net}
        accuracy = {"teacher": metrics.get("test/teacher_acc"), "student": metrics.get("test/acc")}
        rows = []
        for name, module in models.items():
            if module is None:
                continue
            latency = _latency_ms(module, self.timing_batch) if self.timing_batch is not None else float("nan")
            acc = float(accuracy[name]) if accuracy[name] is not None else float("nan")
            rows.append((name, sum(p.numel() for p in module.parameters()), acc, latency))
        batch = len(self.timing_batch) if self.timing_batch is not None else 0
        paths.append(write_csv(out_dir / "distillation.csv",
                               ["model", "parameters", "test_acc", f"ms_per_batch_of_{batch}"], rows))
        paths.append(_plot(rows, batch, out_dir / "distillation.png"))
        return paths


@torch.no_grad()
def _latency_ms(module: nn.Module, batch: Tensor) -> float:
    """Median wall time of a forward pass over one test batch, after a warm-up, waiting for the device each time.

    The one place a report runs a model: a latency cannot be read from the test steps, which time the teacher,
    the student and the loss together and never wait for the device."""
    was_training = module.training
    module.eval()
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    module(batch)
    times = []
    for _ in range(TIMED_PASSES):
        sync()
        start = time.perf_counter()
        module(batch)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    module.train(was_training)
    return statistics.median(times)


def _plot(rows: list[tuple[str, int, float, float]], batch: int, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    names = [row[0] for row in rows]
    colors = ["tab:gray" if name == "teacher" else "tab:green" for name in names]
    panels = (("parameters (millions)", [row[1] / 1e6 for row in rows], "%.2f"),
              ("test accuracy", [row[2] for row in rows], "%.4f"),
              (f"ms per batch of {batch}", [row[3] for row in rows], "%.1f"))
    for ax, (title, values, fmt) in zip(axes, panels, strict=True):
        bars = ax.bar(names, values, color=colors)
        ax.bar_label(bars, fmt=fmt, fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.15)
    fig.suptitle("distillation: teacher against student")
    fig.tight_layout()
    return save(fig, path)

"""Per-step training time of `trainkit fit` against a hand-written PyTorch loop doing the same work.

Both sides: the same model class and seed, the same in-memory TensorDataset and DataLoader (batch size, shuffle,
no workers), timm's AdamW built by the same `OptimizerConfig` (lr 1e-3, weight decay 0.05 except biases/norms),
fp32, cross-entropy, and the same torchmetrics updates per step (accuracy, macro F1, top-5) that trainkit's
classification task logs. The hand loop also accumulates the epoch-mean loss and reads the loss every 50 steps,
as trainkit logs it. trainkit additionally runs everything a user gets by default: Lightning's loop and hooks,
CSV + TensorBoard logging, the progress bar, checkpoint and early-stopping callbacks.

Time per step = (time after the last step - time after the last warm-up step) / steady steps, so periodic costs
(logging every 50 steps) are counted; the ratio is the median over repeats of trainkit / hand, run alternately, on
one thread. CPU time (the process's, all threads) is given beside wall time: on a busy machine it is steadier.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch
from lightning.pytorch import Callback
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from benchmarks.data import loader, random_images
from benchmarks.models import SmallCNN, SmallMLP
from trainkit.optim import OptimizerConfig

LOG_EVERY = 50  # Lightning's default log_every_n_steps


@dataclass
class Case:
    """One model with its input shape and batch size."""

    name: str
    model: type[nn.Module]
    shape: tuple[int, ...]
    batch_size: int


CASES = [
    Case("small CNN (3x32x32, 0.1M params)", SmallCNN, (3, 32, 32), 64),
    Case("small MLP (784-512-512-10)", SmallMLP, (1, 28, 28), 128),
]


class StepTimer(Callback):
    """Records the clock after every training step (the last one run is kept in `StepTimer.times`)."""

    times: list[tuple[float, float]] = []

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        StepTimer.times = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        StepTimer.times.append(_clocks())


def _clocks() -> tuple[float, float]:
    """Wall clock and this process's CPU time (all threads): the CPU time stays honest on a busy machine."""
    return time.perf_counter(), time.process_time()


def _per_step(times: list[tuple[float, float]], warmup: int) -> tuple[float, float]:
    """(wall, cpu) seconds per step after the warm-up."""
    steady = len(times) - warmup
    return tuple((end - start) / steady for start, end in zip(times[warmup - 1], times[-1], strict=True))


def _metrics(num_classes: int = 10) -> MetricCollection:
    return MetricCollection({
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
        "acc_top5": MulticlassAccuracy(num_classes, top_k=5, average="micro"),
    }, compute_groups=False)


def hand_loop(case: Case, steps: int, warmup: int) -> tuple[float, float]:
    """(wall, CPU) seconds per steady-state step of the plain PyTorch loop."""
    torch.manual_seed(0)
    model = case.model()
    optimizer = OptimizerConfig().build(model)
    criterion = nn.CrossEntropyLoss()
    metrics = _metrics()
    data = loader(random_images(steps * case.batch_size, case.shape, 10), case.batch_size, shuffle=True)
    model.train()
    epoch_loss, logged, times = torch.zeros(()), [], []
    for step, (x, y) in enumerate(data):
        logits = model(x)
        loss = criterion(logits, y)
        metrics.update(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_loss += loss.detach()
        if (step + 1) % LOG_EVERY == 0:
            logged.append(loss.item())
        times.append(_clocks())
    return _per_step(times, warmup)


def trainkit_fit(case: Case, steps: int, warmup: int) -> tuple[float, float]:
    """(wall, CPU) seconds per steady-state step of `trainkit fit` with its defaults, run in this process."""
    from trainkit.console import main

    with tempfile.TemporaryDirectory() as runs, contextlib.redirect_stdout(io.StringIO()):
        main([
            "fit", "--seed_everything", "0", "--runs_dir", runs, "--experiment", "bench",
            "--model", "ClassificationModule", "--model.num_classes", "10",
            "--model.backbone.class_path", f"benchmarks.models.{case.model.__name__}",
            "--data", "benchmarks.data.RandomImagesDataModule", "--data.train_size", str(steps * case.batch_size),
            "--data.val_size", str(case.batch_size), "--data.shape", str(list(case.shape)),
            "--data.batch_size", str(case.batch_size),
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_epochs", "1",
            "--trainer.callbacks+=benchmarks.overhead.StepTimer",
        ])
    return _per_step(StepTimer.times, warmup)


def lightning_floor(case: Case, steps: int, warmup: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step of the same task module in a bare Lightning Trainer: no loggers, checkpoints,
    progress bar or trainkit callbacks. What Lightning's loop costs by itself, so the table can tell it apart."""
    from lightning.pytorch import Trainer, seed_everything

    from benchmarks.data import RandomImagesDataModule
    from trainkit.tasks import ClassificationModule

    seed_everything(0, verbose=False)
    data = RandomImagesDataModule(train_size=steps * case.batch_size, val_size=case.batch_size,
                                  shape=case.shape, batch_size=case.batch_size)
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[StepTimer()],
                      limit_val_batches=0)
    trainer.fit(ClassificationModule(backbone=case.model(), num_classes=10), data)
    return _per_step(StepTimer.times, warmup)


def run(smoke: bool = False) -> list[dict[str, str]]:
    """Table rows: per-step wall and CPU times of both sides and their ratios, for each model (one thread)."""
    steps, warmup, repeats = (12, 2, 1) if smoke else (150, 30, 5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core each: two threads on a shared 2-core machine measure the neighbours
    rows = []
    try:
        for case in CASES[-1:] if smoke else CASES:  # smoke: the MLP; the CNN takes the same path
            hand, floor, ours = [], [], []
            for _ in range(repeats):  # interleaved, so a change of load hits every side
                hand.append(hand_loop(case, steps, warmup))
                floor.append(lightning_floor(case, steps, warmup))
                ours.append(trainkit_fit(case, steps, warmup))
            for clock, i in (("wall", 0), ("CPU", 1)):
                ratio = statistics.median(o[i] / f[i] for o, f in zip(ours, floor, strict=True))
                rows.append({  # what trainkit adds to Lightning's own loop: the part trainkit can change
                    "benchmark": f"trainkit fit vs bare Lightning, {case.name}, batch {case.batch_size}, {clock} time",
                    "hand loop": f"{statistics.median(f[i] for f in floor) * 1e3:.2f} ms/step",
                    "trainkit": f"{statistics.median(o[i] for o in ours) * 1e3:.2f} ms/step",
                    "ratio": f"{ratio:.3f}",
                    "target": "<= 1.02",
                })
                for label, side in (("bare Lightning", floor), ("trainkit fit", ours)):
                    ratio = statistics.median(o[i] / h[i] for o, h in zip(side, hand, strict=True))
                    rows.append({
                        "benchmark": f"{label} vs hand loop, {case.name}, batch {case.batch_size}, {clock} time",
                        "hand loop": f"{statistics.median(h[i] for h in hand) * 1e3:.2f} ms/step",
                        "trainkit": f"{statistics.median(o[i] for o in side) * 1e3:.2f} ms/step",
                        "ratio": f"{ratio:.3f}",
                        "target": "<= 1.05" if side is ours else "(Lightning's own floor)",
                    })
    finally:
        torch.set_num_threads(threads)
    return rows

"""CUDA table: images/s of a timm ResNet-50 at 224 px trained through trainkit's task and speed options.

Lightning's Trainer drives trainkit's ClassificationModule and Speed callback directly (no CLI, so it runs where
jsonargparse is missing). The batch is random data already on the GPU, reused every step, so the table measures
the training step (forward, backward, AdamW) and not the input pipeline. Timed with a device synchronisation after
the warm-up steps and after the last step; peak memory is torch.cuda.max_memory_allocated over the run.

    python -m benchmarks.cuda [--smoke] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader, IterableDataset

from trainkit.callbacks import Speed
from trainkit.tasks import ClassificationModule


@dataclass
class Setting:
    """One row of the table: a precision and the speed options on top of it."""

    name: str
    precision: str = "32-true"
    speed: dict[str, Any] = field(default_factory=dict)


SETTINGS = [
    Setting("fp32"),
    Setting("fp32, TF32 matmuls", speed={"matmul_precision": "high"}),
    Setting("16-mixed", "16-mixed"),
    Setting("bf16-mixed", "bf16-mixed"),
    Setting("bf16-mixed + channels_last", "bf16-mixed", {"channels_last": True}),
    Setting("bf16-mixed + channels_last + compile", "bf16-mixed", {"channels_last": True, "compile": True}),
    Setting("bf16-mixed + grad checkpointing", "bf16-mixed", {"grad_checkpointing": True}),
]


class _SameBatch(IterableDataset):
    """`steps` times the same random batch, made once on the GPU."""

    def __init__(self, batch_size: int, size: int, steps: int) -> None:
        generator = torch.Generator(device="cuda").manual_seed(0)
        self.x = torch.randn(batch_size, 3, size, size, device="cuda", generator=generator)
        self.y = torch.randint(0, 1000, (batch_size,), device="cuda", generator=generator)
        self.steps = steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.steps):
            yield self.x, self.y


class _Throughput(Callback):
    """Synchronised clock after the warm-up steps and after the last step; peak memory over the run."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        torch.cuda.reset_peak_memory_stats()

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx + 1 == self.warmup:
            torch.cuda.synchronize()
            self.start = time.perf_counter()
        elif batch_idx + 1 > self.warmup:
            torch.cuda.synchronize()
            self.end, self.steps = time.perf_counter(), batch_idx + 1 - self.warmup


def measure(setting: Setting, batch_size: int, size: int, warmup: int, steps: int) -> dict[str, Any]:
    """Train `warmup + steps` steps of ResNet-50 with `setting`; images/s over the timed steps and peak GiB."""
    torch.manual_seed(0)
    model = ClassificationModule("resnet50", num_classes=1000)
    timer = _Throughput(warmup)
    trainer = Trainer(accelerator="cuda", devices=1, precision=setting.precision, max_steps=warmup + steps,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[Speed(**setting.speed), timer])
    trainer.fit(model, DataLoader(_SameBatch(batch_size, size, warmup + steps), batch_size=None))
    images_per_s = timer.steps * batch_size / (timer.end - timer.start)
    row = {"setting": setting.name, "batch": batch_size, "images/s": round(images_per_s, 1),
           "peak GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    del model, trainer
    torch.cuda.empty_cache()
    return row


def run(smoke: bool = False) -> list[dict[str, Any]]:
    """All settings on the visible GPU; an empty list without CUDA."""
    if not torch.cuda.is_available():
        return []
    torch.backends.cudnn.benchmark = True
    batch_size, size, warmup, steps = (8, 64, 2, 3) if smoke else (128, 224, 15, 40)
    settings = [s for s in SETTINGS if "compile" not in s.speed] if smoke else SETTINGS
    rows = []
    for setting in settings:
        rows.append(measure(setting, batch_size, size, warmup, steps))
        torch.set_float32_matmul_precision("highest")  # undo a TF32 row for the next one
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    """Print the table (and write it as JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny images, a few steps, no compile")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    rows = run(args.smoke)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"\n{device}, torch {torch.__version__}")
    for row in rows:
        print(f"  {row['setting']:<40} {row['images/s']:>8.1f} images/s  peak {row['peak GiB']:.2f} GiB")
    if args.out:
        with open(args.out, "w") as file:
            json.dump({"device": device, "torch": torch.__version__, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()

"""ReportWriter: what a task keeps from its own test steps, and the files it draws from them when the test ends."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

REPORT_DIR = "report"
"""Sub-folder of the run (or evaluation) folder that holds the report files."""


class ReportWriter:
    """Keeps, on the device, what the test steps already computed, and writes report files at test end.

    `update` is called with each test batch and the (predictions, targets) the task's `step` returned; it must not
    read values back to the host (that would wait for the device at every step). `write` gets everything kept,
    gathered from every process and moved to the CPU once, and returns the files it wrote.
    """

    def __init__(self) -> None:
        self.kept: dict[str, list[Tensor]] = {}

    def keep(self, **tensors: Tensor) -> None:
        """Append one batch's tensors under their names."""
        for key, tensor in tensors.items():
            self.kept.setdefault(key, []).append(tensor.detach())

    def update(self, task: Any, batch: Any, preds: Tensor, target: Tensor) -> None:
        """Keep what this report needs from one test batch."""
        self.keep(preds=preds, target=target)

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        """Draw the report from `data` (the kept tensors, concatenated) into `out_dir`."""
        raise NotImplementedError

    def gathered(self, task: Any) -> dict[str, Tensor]:
        """The kept tensors concatenated over batches and processes, on the CPU (a collective call under DDP)."""
        data = {}
        for key, parts in self.kept.items():
            tensor = torch.cat(parts) if len(parts) > 1 else parts[0]
            if task.trainer.world_size > 1:
                tensor = task.all_gather(tensor).flatten(0, 1)
            data[key] = tensor.float().cpu() if tensor.is_floating_point() else tensor.cpu()
        return data


def write_report(task: Any, writer: ReportWriter) -> list[Path]:
    """Run `writer` at the end of a test; a report that fails prints one line and never fails the finished test."""
    trainer = task.trainer
    out_dir = None
    try:
        data = writer.gathered(task) if writer.kept else {}
        log_dir = trainer.log_dir if trainer.loggers else None  # log_dir is a broadcast: every rank asks
        if not trainer.is_global_zero or log_dir is None or not data:
            return []
        out_dir = Path(log_dir) / REPORT_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = writer.write(task, data, out_dir)
        print(f"trainkit: report written to {out_dir} ({', '.join(p.name for p in paths)})", flush=True)
        return paths
    except Exception as error:  # noqa: BLE001  a plot must never cost the user a finished run
        text = " ".join(str(error).split()) or type(error).__name__
        where = f" to {out_dir}" if out_dir is not None else ""
        print(f"trainkit: report not written{where} ({type(writer).__name__}): {type(error).__name__}: {text}",
              file=sys.stderr, flush=True)
        return []

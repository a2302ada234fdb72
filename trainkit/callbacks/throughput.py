"""Samples/s (tokens/s), step time, data-wait fraction and peak memory of every fit, read on logging steps only.

Lightning's ThroughputMonitor calls torch.cuda.synchronize() after every batch to time it; this one reads only the
host clock per step, and averages over the steps between two logging steps, where the loggers wait for the device
anyway, so its times converge on the device's pace without adding a sync.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from trainkit.reports.progress import FitClock
from trainkit.reports.table import duration

SYNC_SAMPLE_STEPS = 8  # CUDA: steps of the second logging window counted for host-device synchronisations


class Throughput(Callback):
    """Logs `train/samples_per_sec`, `train/step_time` (s per batch), `train/data_wait_frac` (time spent waiting
    for the next batch over the step time), `train/peak_mem_gb`, and `train/tokens_per_sec` where the batch or the
    task counts tokens; on CUDA also `train/syncs_per_step`, counted on a few steps that are not logged."""

    def __init__(self, log: bool = True) -> None:
        """Args:
        log: measure and log throughput (a clock read per step; off leaves the callback out).
        """
        self.log = log
        self.totals: dict[str, float] = {}
        """Whole-fit figures for the end-of-fit summary: samples, tokens, seconds, wait, steps, peak_mem_gb."""
        self._window: dict[str, Any] = {}
        self._last_end: float | None = None
        self._paused_at: float | None = None
        self._cuda = False
        self._windows = 0
        self._syncs: Any = None
        self._records: list[Any] = []
        self._sync_steps = self._sync_total = 0
        self.clock = FitClock()
        """The fit's start and length: the time left in progress.json on logging steps, the total in the summary."""
        self._run_dir: str | None = None
        self._fit_seconds = 0.0

    @property
    def enabled(self) -> bool:
        """Whether throughput is measured; a disabled callback is not handed to the Trainer."""
        return self.log

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self.totals = {"samples": 0.0, "tokens": 0.0, "seconds": 0.0, "wait": 0.0, "steps": 0.0, "peak_mem_gb": 0.0}
        self._windows = 0
        self._new_window(time.perf_counter())
        self.clock.start(trainer)
        self._run_dir = trainer.log_dir if trainer.loggers else None  # a broadcast: asked on every rank alike

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._resume()  # the first batch's wait then includes starting the loader's workers

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        window = self._window
        if self._last_end is not None:
            window["wait"] += now - self._last_end
        window["samples"] += _batch_size(batch)
        tokens = _tokens(batch, pl_module)
        if tokens is not None:
            window["tokens"] = window["tokens"] + tokens  # may be a device tensor: summed there, read when logged
        window["steps"] += 1
        if self._cuda and self._windows == 1 and self._sync_steps < SYNC_SAMPLE_STEPS and \
                not trainer._logger_connector.should_update_logs:
            self._start_sync_count()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self._last_end = time.perf_counter()
        if self._syncs is not None:
            self._stop_sync_count()
        if trainer._logger_connector.should_update_logs and self._window["steps"]:
            self._flush(trainer, pl_module, now)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._pause()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._resume()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pause()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._window.get("steps"):
            self._flush(trainer, pl_module, self._last_end or time.perf_counter(), log=False)
        self._fit_seconds = self.clock.elapsed

    def summary(self) -> list[str]:
        """End-of-fit summary lines (empty before any step)."""
        totals = self.totals
        if not totals.get("steps") or totals["seconds"] <= 0:
            return []
        rate = f"{totals['samples'] / totals['seconds']:.1f} samples/s"
        if totals["tokens"]:
            rate += f", {totals['tokens'] / totals['seconds']:.0f} tokens/s"
        memory = "peak device memory" if self._cuda else "peak RSS"
        return [f"  throughput       {rate}, {1e3 * totals['seconds'] / totals['steps']:.1f} ms/step, "
                f"data wait {100 * totals['wait'] / totals['seconds']:.0f}% of step time, "
                f"{memory} {totals['peak_mem_gb']:.2f} GB",
                f"  total time       {duration(self._fit_seconds)} (training and validation; "
                f"{duration(totals['seconds'])} in training steps)"]

    def _pause(self) -> None:
        """Validation and epoch-end work (checkpoints) are not training throughput: their time is left out."""
        if self._paused_at is None:
            self._paused_at = time.perf_counter()

    def _resume(self) -> None:
        now = time.perf_counter()
        if self._paused_at is not None and self._window:
            self._window["start"] += now - self._paused_at
        self._last_end, self._paused_at = now, None

    def _new_window(self, now: float) -> None:
        self._window = {"start": now, "wait": 0.0, "samples": 0, "tokens": 0, "steps": 0}

    def _flush(self, trainer: Trainer, pl_module: LightningModule, now: float, log: bool = True) -> None:
        window = self._window
        elapsed = max(now - window["start"], 1e-9)
        tokens = float(window["tokens"])  # the one read of a device-side token count: logging steps only
        peak = _peak_memory_gb(pl_module.device)
        metrics = {
            "train/samples_per_sec": window["samples"] / elapsed,
            "train/step_time": elapsed / window["steps"],
            "train/data_wait_frac": min(1.0, window["wait"] / elapsed),
            "train/peak_mem_gb": peak,
        }
        if tokens:
            metrics["train/tokens_per_sec"] = tokens / elapsed
        if self._sync_steps and self._windows == 1:
            metrics["train/syncs_per_step"] = self._sync_total / self._sync_steps
        totals = self.totals
        for key, value in (("samples", window["samples"]), ("tokens", tokens), ("seconds", elapsed),
                           ("wait", window["wait"]), ("steps", window["steps"])):
            totals[key] += value
        totals["peak_mem_gb"] = max(totals["peak_mem_gb"], peak)
        if log and trainer.is_global_zero:
            step = trainer.fit_loop.epoch_loop._batches_that_stepped  # the row Lightning writes this step's loss in
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            if self._run_dir:
                self.clock.write(trainer, self._run_dir)  # for `trainkit runs`: the time this run has left
        self._windows += 1
        self._new_window(now)

    def _start_sync_count(self) -> None:
        # torch warns at every synchronising CUDA call in this mode; the warnings are counted, not shown.
        self._syncs = warnings.catch_warnings(record=True)
        self._records = self._syncs.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def _stop_sync_count(self) -> None:
        torch.cuda.set_sync_debug_mode("default")
        self._syncs.__exit__(None, None, None)
        self._sync_total += sum("synchroniz" in str(record.message) for record in self._records)
        self._sync_steps += 1
        self._syncs = None


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor."""
    if isinstance(batch, Tensor):
        return len(batch) if batch.dim() else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, list | tuple):
        for item in batch:
            size = _batch_size(item)
            if size:
                return size
    return 0


def _tokens(batch: Any, module: LightningModule) -> int | Tensor | None:
    """Tokens in a batch: the task's own `count_tokens(batch)`, else an attention mask's sum or input_ids' size."""
    count = getattr(module, "count_tokens", None)
    if callable(count):
        return count(batch)
    if isinstance(batch, dict):
        mask = batch.get("attention_mask")
        if isinstance(mask, Tensor):
            return mask.sum()
        ids = batch.get("input_ids")
        if isinstance(ids, Tensor):
            return ids.numel()
    return None


def _peak_memory_gb(device: torch.device) -> float:
    """Peak allocated CUDA memory on the device; on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9  # an allocator counter: no sync
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e9 if sys.platform == "darwin" else 1e6)  # bytes on macOS, kilobytes on Linux

"""Samples/s (tokens/s), step time, data-wait fraction, peak memory and MFU of every fit, read on logging steps only.

Lightning's ThroughputMonitor calls torch.cuda.synchronize() after every batch to time it; this one reads only the
host clock per step, and averages over the steps between two logging steps, where the loggers wait for the device
anyway, so its times converge on the device's pace without adding a sync.

MFU (model FLOPs utilisation) is the model's FLOP/s over the device's peak: the FLOPs of one sample's forward and
backward pass are counted once, on the fit's first batch, by torch's FlopCounterMode (that step, slowed by the
counting, is left out of the throughput figures); the peak is the device table's for the run's precision on a GPU
(trainkit/hpc/devices.py), and on a CPU the fp32 matmul rate measured once per process (docs/speed.md).
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
from torch.utils.flop_counter import FlopCounterMode

from trainkit.errors import ConfigError
from trainkit.reports.progress import FitClock
from trainkit.reports.table import duration

SYNC_SAMPLE_STEPS = 8  # CUDA: steps of the second logging window counted for host-device synchronisations


class Throughput(Callback):
    """Logs `train/samples_per_sec`, `train/step_time` (s per batch), `train/data_wait_frac` (time spent waiting
    for the next batch over the step time), `train/peak_mem_gb`, `train/mfu` (model FLOP/s over the device's peak)
    and `train/tokens_per_sec` where the batch or the task counts tokens; on CUDA also `train/syncs_per_step`,
    counted on a few steps that are not logged."""

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
        self.flops_per_sample: float | None = None
        """FLOPs of one sample's forward and backward pass, counted on the first batch (None before, or uncounted)."""
        self.peak_flops: float | None = None
        """The device's peak FLOP/s for the run's precision (None where unknown: no MFU then)."""
        self._counter: FlopCounterMode | None = None
        self._count_first = False
        self._counted_from = 0.0

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
        self.peak_flops = _peak_flops(trainer, pl_module.device)  # on CPU 0.2 s of matmuls: before the clock starts
        self._count_first = self.peak_flops is not None and self.flops_per_sample is None
        self._run_dir = trainer.log_dir if trainer.loggers else None  # a broadcast: asked on every rank alike
        self._new_window(time.perf_counter())
        self.clock.start(trainer)

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
        if self._count_first:
            self._count_first = False
            self._counted_from = time.perf_counter()
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self._last_end = time.perf_counter()
        if self._counter is not None:
            self._stop_flop_count(batch, pl_module, now)
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

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self._counter = None

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
        if self.flops_per_sample and self.peak_flops:
            mfu = self.flops_per_sample * totals["samples"] / totals["seconds"] / self.peak_flops
            rate += f", MFU {100 * mfu:.2g}%"
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
        if self.flops_per_sample and self.peak_flops:
            metrics["train/mfu"] = self.flops_per_sample * window["samples"] / elapsed / self.peak_flops
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

    def _stop_flop_count(self, batch: Any, pl_module: LightningModule, now: float) -> None:
        """Finish counting the first batch's FLOPs, and leave that slowed step out of the throughput window."""
        assert self._counter is not None
        self._counter.__exit__(None, None, None)
        flops, self._counter = self._counter.get_total_flops(), None
        samples = _batch_size(batch)
        if flops and samples:
            self.flops_per_sample = flops / samples
        window = self._window
        window["start"] += now - self._counted_from
        window["steps"] -= 1
        window["samples"] -= samples
        tokens = _tokens(batch, pl_module)
        if tokens is not None:
            window["tokens"] = window["tokens"] - tokens

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


def _peak_flops(trainer: Trainer, device: torch.device) -> float | None:
    """The device's peak FLOP/s for the run's precision: the device table's on CUDA, the measured matmul on CPU."""
    from trainkit.hpc.devices import device_from_cuda_name, measured_cpu_tflops, precision_dtype

    if device.type == "cpu":
        return measured_cpu_tflops() * 1e12  # fp32: CPU autocast to bf16 has no faster matmul to count on
    if device.type != "cuda":
        return None
    entry = device_from_cuda_name(torch.cuda.get_device_name(device))
    if entry is None:
        return None
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
    try:
        return entry.peak_tflops(precision_dtype(trainer.precision, tf32)) * 1e12
    except ConfigError:  # a precision the device has no math for: Lightning will say so itself
        return None


def _peak_memory_gb(device: torch.device) -> float:
    """Peak allocated CUDA memory on the device; on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9  # an allocator counter: no sync
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e9 if sys.platform == "darwin" else 1e6)  # bytes on macOS, kilobytes on Linux

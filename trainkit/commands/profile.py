"""`trainkit profile --config X.yaml [--steps N]`: N training steps under torch.profiler. Writes a Chrome trace and
a table of the top operators by self time, and prints where a step's time goes: data, forward, backward, optimizer
and the rest (callbacks, logging, Lightning's loop). Takes every `trainkit fit` flag; nothing is saved as a run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from trainkit.commands._quiet_cli import quiet_cli
from trainkit.errors import ConfigError

PHASES = ("data", "forward", "backward", "optimizer", "callbacks and loop")


class StepSplit(Callback):
    """Times each phase of the training steps after `warmup`, with a device sync at each boundary (profiling only)
    so device time lands in the phase that queued it; drives the torch profiler's schedule."""

    def __init__(self, profiler: torch.profiler.profile, warmup: int) -> None:
        self.profiler, self.warmup = profiler, warmup
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self._marks: dict[str, float] = {}
        self._batches = 0

    def _now(self, pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.profiler.start()
        self._marks["end"] = self._now(pl_module)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._marks["start"] = self._now(pl_module)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        self._marks["backward"] = self._now(pl_module)

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._marks["after_backward"] = self._now(pl_module)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        self._marks["optimizer"] = self._now(pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        marks, end = self._marks, self._now(pl_module)
        self._batches += 1
        if self._batches > self.warmup and {"backward", "after_backward"} <= marks.keys():
            forward = marks["backward"] - marks["start"]
            backward = marks["after_backward"] - marks["backward"]
            optimizer = end - marks["optimizer"] if "optimizer" in marks else 0.0
            total = end - marks["end"]
            data = marks["start"] - marks["end"]
            split = {"data": data, "forward": forward, "backward": backward, "optimizer": optimizer}
            split["callbacks and loop"] = max(0.0, total - sum(split.values()))
            for phase, seconds in split.items():
                self.seconds[phase] += seconds
            self.steps += 1
        self.profiler.step()
        self._marks = {"end": self._now(pl_module)}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.profiler.stop()

    def table(self) -> list[str]:
        """One line per phase: ms per step and its share of the step."""
        total = sum(self.seconds.values()) or 1e-12
        return [f"  {phase:<20} {1e3 * s / max(self.steps, 1):9.2f} ms/step  {100 * s / total:5.1f}%"
                for phase, s in self.seconds.items()]


def main(argv: list[str]) -> None:
    """Run `trainkit profile`."""
    parser = argparse.ArgumentParser(
        prog="trainkit profile",
        description="Profile N training steps with torch.profiler (CPU, and CUDA where used): a Chrome trace, the top "
        "operators by self time and the step split into data, forward, backward, optimizer and the rest. Every other "
        "flag is a `trainkit fit` flag (--config X.yaml, --trainer.*, --model.*).",
    )
    parser.add_argument("--steps", type=int, default=20, help="training steps profiled (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="steps run first and not recorded (default 5)")
    parser.add_argument("--rows", type=int, default=15, help="operators in the table (default 15)")
    parser.add_argument("--out", type=Path, default=None, help="folder (default RUNS_DIR/EXPERIMENT/profile)")
    args, rest = parser.parse_known_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.rows < 1:
        raise ConfigError(f"--steps {args.steps}, --warmup {args.warmup} and --rows {args.rows} must be positive "
                          "(--warmup may be 0); e.g. --steps 20 --warmup 5")
    total = args.steps + args.warmup
    cli = quiet_cli([*rest, "--trainer.max_steps", str(total),  # the run's own max_epochs still bounds it
                     "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                     "--doctor.preflight", "false", "--test_after_fit", "false"])
    out = args.out or Path(cli.config.runs_dir) / cli.config.experiment / "profile"
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and cli.trainer.strategy.root_device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    trace, sort = out / "trace.json", "self_cuda_time_total" if cuda else "self_cpu_time_total"
    tables: list[str] = []

    def ready(prof: torch.profiler.profile) -> None:  # the recorded events are only there while this runs
        prof.export_chrome_trace(str(trace))
        tables.append(prof.key_averages().table(sort_by=sort, row_limit=args.rows))

    profiler = torch.profiler.profile(
        activities=activities, schedule=torch.profiler.schedule(wait=0, warmup=args.warmup, active=args.steps),
        on_trace_ready=ready, record_shapes=False,
    )
    split = StepSplit(profiler, args.warmup)
    cli.trainer.callbacks.append(split)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if split.steps < args.steps or not tables:
        raise ConfigError(f"the run ended before {total} steps (warm-up included); lower --steps or --warmup, or "
                          "raise --trainer.max_epochs or --trainer.limit_train_batches")
    ops = tables[-1]
    (out / "top_ops.txt").write_text(ops)
    device = "CUDA" if cuda else "CPU"
    lines = [f"trainkit profile: {split.steps} steps on {device} after {args.warmup} warm-up steps",
             *split.table(), f"  trace            {trace} (chrome://tracing or ui.perfetto.dev)",
             f"  top operators    {out / 'top_ops.txt'} (by self {device} time)", "", ops]
    print("\n".join(lines), flush=True)

"""`trainkit plan --config X.yaml [--device a100-80gb --devices N --nodes M --mfu 0.4 --probe_steps 5]`: memory
per device, the largest batch that fits, FLOPs, time per epoch and device-hours of a run, before training it; a short
real probe on this machine prints the measured step time beside the estimate. Takes every `trainkit fit` flag."""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor

from trainkit.callbacks import EMA, SWA, NonFiniteGuard, TrainingMonitor
from trainkit.cli import TrainkitCLI
from trainkit.commands._quiet_cli import QUIET_FLAGS
from trainkit.errors import ConfigError
from trainkit.hpc.devices import Device, device, device_from_cuda_name, measured_cpu_tflops, precision_dtype
from trainkit.hpc.memory_estimate import estimate_memory, largest_batch, states_per_parameter, step_temporaries
from trainkit.hpc.step_footprint import StepFootprint, measure_step
from trainkit.reports.table import duration

WARMUP_STEPS = 1  # a probe step not timed: the first allocates the optimizer state and warms the allocator
GIB = 2**30
_CPU_PRECISION = {"16-mixed": "bf16-mixed", "16-true": "bf16-true", "16": "bf16-mixed", "transformer-engine":
                  "bf16-mixed"}  # CPUs have no fp16 autocast; bf16 keeps the same activation sizes


@dataclass
class RunShape:
    """What the config asks of the Trainer, read before the plan measures on one CPU process."""

    precision: str
    strategy: str
    sharding: str
    devices: int
    nodes: int
    max_epochs: int | None
    max_steps: int
    accumulate: int


class _PlanCLI(TrainkitCLI):
    """TrainkitCLI that records the configured Trainer shape, then builds the run for one CPU process."""

    def __init__(self, args: list[str], probe_steps: int) -> None:
        self.probe_steps = probe_steps  # the probe's max_steps replaces the run's once the run's is read
        super().__init__(args=args, run=False)

    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        strategy, sharding = _strategy(trainer.get("strategy"))
        self.shape = RunShape(
            precision=str(trainer.get("precision") or "32-true"), strategy=strategy, sharding=sharding,
            devices=trainer.devices if isinstance(trainer.get("devices"), int) and trainer.devices > 0 else 1,
            nodes=int(trainer.get("num_nodes") or 1), max_epochs=trainer.get("max_epochs"),
            max_steps=int(trainer.get("max_steps") or -1), accumulate=int(trainer.get("accumulate_grad_batches") or 1))
        for key, value in {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
                           "precision": _CPU_PRECISION.get(self.shape.precision, self.shape.precision),
                           "limit_val_batches": 0, "num_sanity_val_steps": 0, "max_epochs": -1,
                           "max_steps": WARMUP_STEPS + self.probe_steps if self.probe_steps else 1,
                           "enable_progress_bar": False, "enable_model_summary": False}.items():
            trainer[key] = value


def _strategy(strategy: Any) -> tuple[str, str]:
    """("ddp" or "fsdp", FSDP's sharding strategy) of a Trainer's strategy flag (a name or a class_path)."""
    if strategy is None or isinstance(strategy, str):
        return ("fsdp" if "fsdp" in str(strategy).lower() else "ddp"), "FULL_SHARD"
    class_path = str(strategy.get("class_path", ""))
    init_args = strategy.get("init_args") or {}
    return ("fsdp" if "FSDP" in class_path else "ddp"), str(init_args.get("sharding_strategy", "FULL_SHARD"))


class _Probe(Callback):
    """Times the probe's steps after the warm-up, reads the peak RSS growth, then measures the step's footprint."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.step_seconds: float | None = None
        self.rss_growth: float | None = None
        self.footprint: StepFootprint | None = None
        self.states = 0.0
        self.temporaries: dict[bool, int] = {False: 0, True: 0}
        """Elements the optimizer step allocates, on CPU (False) and on CUDA (True)."""
        self.batches_per_epoch = 0
        self.tokens_per_sample: int | None = None
        self._rss_before = 0.0
        self._timed_from: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.batches_per_epoch = int(trainer.num_training_batches)
        if trainer.optimizers:
            self.states = states_per_parameter(trainer.optimizers[0])
            self.temporaries = {cuda: step_temporaries(trainer.optimizers[0], cuda) for cuda in (False, True)}
        self._rss_before = _reset_peak_rss()
        if self.steps == 0:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == WARMUP_STEPS:
            self._timed_from = time.perf_counter()
        elif trainer.global_step == WARMUP_STEPS + self.steps and self._timed_from is not None:
            self.step_seconds = (time.perf_counter() - self._timed_from) / self.steps

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.steps and self._rss_before:
            self.rss_growth = _peak_rss() - self._rss_before
        sample = pl_module._apply_batch_transfer_handler(next(iter(trainer.train_dataloader)))  # as fit moves it
        if isinstance(sample, dict) and isinstance(sample.get("input_ids"), Tensor):
            self.tokens_per_sample = int(sample["input_ids"].shape[-1])  # the padded length the FLOPs were counted at

        def loss_at(size: int) -> Tensor:
            with trainer.precision_plugin.forward_context():
                batch = apply_to_collection(sample, Tensor, lambda t: _resize(t, size))
                loss = pl_module.step(batch, "train")[0] if hasattr(pl_module, "step") else \
                    pl_module.training_step(batch, 0)
            return loss["loss"] if isinstance(loss, dict) else loss

        self.footprint = measure_step(loss_at, pl_module.parameters())
        pl_module.zero_grad(set_to_none=True)


def _resize(tensor: Tensor, size: int) -> Tensor:
    """The batch's tensor repeated or cut to `size` rows."""
    if tensor.dim() == 0:
        return tensor
    return tensor.repeat(-(-size // len(tensor)), *([1] * (tensor.dim() - 1)))[:size]


def _reset_peak_rss() -> float:
    """Reset Linux's peak-RSS counter (VmHWM) and return the current RSS in bytes; 0 where /proc has neither."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _proc_status("VmRSS")
    except OSError:
        return 0.0


def _peak_rss() -> float:
    return _proc_status("VmHWM")


def _proc_status(key: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(key + ":"))
    return float(line.split()[1]) * 1024


def _target(name: str | None) -> tuple[Device, bool]:
    """(the device planned for, whether it is this machine's CPU): --device, else the CUDA device here, else CPU."""
    if name is not None and name.lower() != "cpu":
        return device(name), False
    if name is None and torch.cuda.is_available() and (found := device_from_cuda_name(torch.cuda.get_device_name())):
        return found, False
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    peak = measured_cpu_tflops()
    return Device("cpu", round(ram, 1), peak, None, peak, peak), True  # CPU bf16: timed as fp32 (no better peak)


def plan(argv: list[str], device_name: str | None = None, devices: int | None = None, nodes: int | None = None,
         mfu: float = 0.4, probe_steps: int = 5, margin: float = 0.1) -> dict[str, Any]:
    """The plan of the run `argv` (trainkit fit flags) as a dict: parameters, memory, batch, FLOPs, time, probe."""
    target, on_cpu = _target(device_name)
    cli = _PlanCLI([*argv, *QUIET_FLAGS, "--doctor.preflight", "false", "--test_after_fit", "false",
                    "--data_summary.enabled", "false"], probe_steps)
    cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, SaveConfigCallback)]
    shape, model, data = cli.shape, cli.model, cli.datamodule
    batch = getattr(data, "batch_size", None)
    if not isinstance(batch, int):
        raise ConfigError(f"trainkit plan needs a DataModule with an integer batch_size; {type(data).__name__} has "
                          "none")
    dtype = precision_dtype(shape.precision)
    peak = target.peak_tflops("fp32" if on_cpu else dtype) * 1e12  # before the probe: a T4 has no bf16, say so now
    probe = _Probe(probe_steps)
    cli.trainer.callbacks.insert(0, probe)  # first: its RSS baseline comes before the other callbacks' copies
    cli.trainer.fit(model, datamodule=data)
    devices, nodes = devices or shape.devices, nodes or shape.nodes
    world = devices * nodes
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    footprint = probe.footprint
    copies = _weight_copies(cli.trainer.callbacks)
    memory = estimate_memory(trainable, frozen, probe.states, shape.precision, footprint.activations(batch),
                             shape.strategy, world, devices, shape.sharding, copies, probe.temporaries[not on_cpu])
    fixed = memory.total - memory.activations + footprint.activations_fixed
    fits = largest_batch(fixed, footprint.activations_per_sample, target.memory_gib * GIB, margin)
    samples_per_epoch = probe.batches_per_epoch * batch
    total_samples = _run_samples(shape, samples_per_epoch, batch, world)
    rate = world * peak * mfu / footprint.flops_per_sample  # samples per second of the whole run
    result: dict[str, Any] = {
        "device": target.name, "devices": devices, "nodes": nodes, "precision": shape.precision,
        "strategy": shape.strategy if world > 1 or shape.strategy == "fsdp" else "single device",
        "parameters": {"trainable": trainable, "frozen": frozen},
        "batch_per_device": batch, "optimizer_states_per_parameter": probe.states,
        "memory_bytes": {**asdict(memory), "total": memory.total},
        "activations_measured": "autograd's saved tensors of one CPU forward/backward at batch 2 and 4, scaled "
                                f"linearly to {batch}, {_CPU_PRECISION.get(shape.precision, shape.precision)}",
        "device_memory_gib": target.memory_gib, "margin": margin, "largest_batch_per_device": fits,
        "flops_per_sample": footprint.flops_per_sample, "peak_tflops": peak / 1e12,
        "peak_dtype": "fp32 (measured matmul)" if on_cpu else dtype, "mfu": mfu,
        "samples_per_second": rate, "samples_per_epoch": samples_per_epoch, "epoch_seconds": samples_per_epoch / rate,
        "run_samples": total_samples, "run_seconds": total_samples / rate,
        "device_hours": total_samples / rate * world / 3600,
    }
    if probe.tokens_per_sample:
        result["tokens_per_sample"] = probe.tokens_per_sample
        result["flops_per_token"] = footprint.flops_per_sample / probe.tokens_per_sample
        result["flops_per_token_6n"] = 6 * (trainable + frozen)  # the rule of thumb for decoders, attention left out
    if probe.step_seconds is not None:
        cpu_peak = measured_cpu_tflops() * 1e12
        on_this_cpu = estimate_memory(trainable, frozen, probe.states, cli.trainer.precision,
                                      footprint.activations(batch), copies=copies, temporaries=probe.temporaries[False])
        step_flops = batch * shape.accumulate * footprint.flops_per_sample  # one optimizer step on this one process
        result["probe"] = {
            "steps": probe_steps, "step_seconds": probe.step_seconds,
            "estimated_step_seconds": step_flops / (cpu_peak * mfu), "cpu_peak_tflops": cpu_peak / 1e12,
            "measured_mfu": step_flops / probe.step_seconds / cpu_peak,
            "peak_rss_growth_bytes": probe.rss_growth,
            "estimated_growth_bytes": on_this_cpu.total - on_this_cpu.weights,
        }
    return result


def _weight_copies(callbacks: list[Callback]) -> int:
    """Copies of the trainable weights the run's callbacks hold at once: the update ratio's two on logging steps
    (the weights before the step, then the update), one for the non-finite guard's last good weights, and one for
    an EMA or SWA average."""
    copies = 0
    for callback in callbacks:
        if isinstance(callback, TrainingMonitor) and callback.update_ratio:
            copies += 2
        elif isinstance(callback, EMA | SWA | NonFiniteGuard):
            copies += 1
    return copies


def _run_samples(shape: RunShape, samples_per_epoch: int, batch: int, world: int) -> int:
    """Samples the whole run trains on: its epochs, or its optimizer steps when --trainer.max_steps ends it sooner."""
    epochs = shape.max_epochs if shape.max_epochs not in (None, -1) else (1000 if shape.max_steps < 0 else math.inf)
    by_epochs = epochs * samples_per_epoch
    by_steps = shape.max_steps * shape.accumulate * batch * world if shape.max_steps > 0 else math.inf
    return int(min(by_epochs, by_steps))


def _size(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.2f} GiB" if num_bytes >= GIB / 10 else f"{num_bytes / 2**20:.1f} MiB"


def render(result: dict[str, Any]) -> str:
    """The plan as the lines `trainkit plan` prints."""
    r, m = result, result["memory_bytes"]
    params = r["parameters"]
    usable = (1 - r["margin"]) * r["device_memory_gib"]
    lines = [
        f"trainkit plan: {r['devices'] * r['nodes']} x {r['device']} ({r['devices']} per node, {r['nodes']} node(s)), "
        f"{r['precision']}, {r['strategy']}",
        f"  parameters        {params['trainable']:,} trainable, {params['frozen']:,} frozen",
        f"  memory per device at batch {r['batch_per_device']}:",
        f"    weights           {_size(m['weights'])}",
        f"    gradients         {_size(m['gradients'])}",
        f"    optimizer states  {_size(m['optimizer'])} ({r['optimizer_states_per_parameter']:g} per trainable "
        "parameter)",
        f"    activations       {_size(m['activations'])} (measured: {r['activations_measured']})",
        f"    weight copies     {_size(m['copies'])} (the NaN guard's last good weights, EMA/SWA averages, the update "
        "ratio's two on logging steps: --train_stats.update_ratio false)",
        f"    optimizer step    {_size(m['step_temporaries'])} (temporaries: none fused, all parameters foreach "
        "(CUDA's default), two of the largest in a loop (CPU's))",
        f"    total             {_size(m['total'])} of {r['device_memory_gib']:g} GiB"
        f"{'' if m['total'] <= usable * GIB else '  DOES NOT FIT'}",
        f"  largest batch     {r['largest_batch_per_device']:,} per device fits {r['device']} with "
        f"{r['margin']:.0%} free",
        f"  FLOPs per sample  {r['flops_per_sample'] / 1e9:.3g} GFLOP (forward + backward, torch's FLOP counter)"
        + (f"; per token {r['flops_per_token'] / 1e6:.4g} MFLOP at {r['tokens_per_sample']} tokens (6N rule: "
           f"{r['flops_per_token_6n'] / 1e6:.4g} MFLOP)" if "flops_per_token" in r else ""),
        f"  time              at {r['peak_tflops']:.4g} TFLOP/s {r['peak_dtype']} peak x MFU {r['mfu']} (assumed; "
        f"--mfu): {r['samples_per_second']:,.0f} samples/s, {duration(r['epoch_seconds'])} per epoch of "
        f"{r['samples_per_epoch']:,} samples, "
        f"{duration(r['run_seconds'])} for the run ({r['run_samples']:,} samples), "
        f"{r['device_hours']:.3g} device-hours",
    ]
    if probe := r.get("probe"):
        lines.append(
            f"  probe (this CPU)  {probe['steps']} steps: {probe['step_seconds']:.3f} s/step measured, "
            f"{probe['estimated_step_seconds']:.3f} s/step estimated at MFU {r['mfu']} of the measured "
            f"{probe['cpu_peak_tflops']:.3g} TFLOP/s matmul peak (measured MFU {probe['measured_mfu']:.2f})")
        if probe["peak_rss_growth_bytes"] is not None:
            lines.append(f"                    peak RSS growth {_size(probe['peak_rss_growth_bytes'])} measured, "
                         f"{_size(probe['estimated_growth_bytes'])} estimated (all but the weights)")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Run `trainkit plan`."""
    parser = argparse.ArgumentParser(
        prog="trainkit plan",
        description="Memory per device, the largest batch that fits, FLOPs, time and device-hours of a run, before "
        "training it. Every other flag is a `trainkit fit` flag (--config X.yaml, --trainer.*, --model.*).")
    parser.add_argument("--device", default=None, help="device planned for, e.g. a100-80gb, h100-sxm, l40s, t4 or "
                        "cpu (default: the CUDA device here, else this CPU)")
    parser.add_argument("--devices", type=int, default=None, help="devices per node (default: the config's)")
    parser.add_argument("--nodes", type=int, default=None, help="nodes (default: the config's num_nodes)")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed (default 0.4)")
    parser.add_argument("--probe_steps", type=int, default=5, help="timed training steps on this machine (0: none)")
    parser.add_argument("--margin", type=float, default=0.1, help="fraction of device memory left free (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    args, rest = parser.parse_known_args(argv)
    if not 0 < args.mfu <= 1:
        raise ConfigError(f"--mfu {args.mfu} must be in (0, 1]; 0.3-0.5 is typical of a well-fed GPU, e.g. --mfu 0.4")
    if args.probe_steps < 0 or not 0 <= args.margin < 1 or (args.devices or 1) < 1 or (args.nodes or 1) < 1:
        raise ConfigError(f"--probe_steps {args.probe_steps} must be >= 0, --margin {args.margin} in [0, 1), "
                          "--devices and --nodes >= 1; e.g. --probe_steps 5 --margin 0.1")
    result = plan(rest, args.device, args.devices, args.nodes, args.mfu, args.probe_steps, args.margin)
    if args.json:
        from trainkit.reports.as_json import to_json

        print(to_json(result))
    else:
        print(render(result), flush=True)

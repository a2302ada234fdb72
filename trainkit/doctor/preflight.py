"""Preflight checks: what usually wastes a cluster slot, found in the first seconds. Each returns problems as
one-line strings that name the bad value and the fix; an empty list means the check passed."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from trainkit.errors import ConfigError, close_names, did_you_mean
from trainkit.hpc.slurm_env import slurm_layout

_SHARDED = ("fsdp", "deepspeed", "model_parallel")  # strategies that need CUDA devices
_FP16 = ("16-mixed", "16", "16-true", "half")


class PreflightError(ConfigError):
    """One or more preflight problems; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_trainer_config(config: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """Problems in the Trainer arguments that Lightning would report as a traceback (or silently change)."""
    environ = dict(os.environ) if environ is None else environ
    accelerator = _accelerator(config.get("accelerator", "auto"))
    problems = []
    if accelerator == "cuda" and not torch.cuda.is_available():
        problems.append(f"trainer.accelerator={config.get('accelerator')} but no CUDA GPU is visible here; use "
                        "--trainer.accelerator auto (or cpu), or run on a GPU node")
        accelerator = "cpu"
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    problems += _precision(str(config.get("precision") or "32-true"), accelerator)
    problems += _strategy(config.get("strategy", "auto"), accelerator)
    problems += _slurm(config, accelerator, environ)
    return problems


def _accelerator(value: Any) -> str:
    name = str(getattr(value, "__class__", type(value)).__name__ if not isinstance(value, str) else value).lower()
    if "cuda" in name or name == "gpu":
        return "cuda"
    return "cpu" if "cpu" in name else ("mps" if "mps" in name else "auto" if name == "auto" else name)


def _precision(precision: str, accelerator: str) -> list[str]:
    if accelerator == "cpu" and precision in _FP16 and precision != "16-true":
        return [f"trainer.precision={precision} (fp16 AMP) is not supported on CPU (Lightning would silently switch "
                "to bf16-mixed); use --trainer.precision bf16-mixed or 32-true, or run on a GPU"]
    if accelerator == "cuda" and precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        return [f"trainer.precision={precision} needs a GPU with bfloat16 (Ampere or newer), not "
                f"{torch.cuda.get_device_name()}; use --trainer.precision 16-mixed"]
    return []


def _strategy(strategy: Any, accelerator: str) -> list[str]:
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    lowered = name.lower().replace("strategy", "")
    if accelerator != "cuda" and any(s.replace("_", "") in lowered or s in lowered for s in _SHARDED):  # BlockFSDP
        return [f"trainer.strategy={name} needs CUDA GPUs but this run is on {accelerator}; use "
                "--trainer.strategy ddp (or auto) here, and FSDP on a GPU node"]
    if isinstance(strategy, str):
        from lightning.pytorch.strategies import StrategyRegistry

        known = StrategyRegistry.available_strategies()
        if strategy not in known and strategy != "auto":
            hint = did_you_mean(strategy, known).strip() or f"choose one of: {', '.join(sorted(known))}"
            return [f"trainer.strategy={strategy} is not a Lightning strategy; {hint}"]
    return []


def _slurm(config: dict[str, Any], accelerator: str, environ: dict[str, str]) -> list[str]:
    """Under a SLURM batch job, tasks per node must equal `devices` and nodes must equal `num_nodes`."""
    if (layout := slurm_layout(environ)) is None:
        return []  # not a batch job: Lightning does not use SLURM's process layout either
    nodes, per_node = layout.nodes or 1, layout.tasks_per_node
    problems = []
    devices = _device_count(config.get("devices", "auto"), accelerator)
    if per_node is not None and devices is not None and per_node != devices:
        problems.append(f"SLURM runs {per_node} task(s) per node but trainer.devices={config.get('devices')}; set "
                        f"--trainer.devices {per_node}, or #SBATCH --ntasks-per-node={devices}")
    num_nodes = int(config.get("num_nodes") or 1)
    if nodes != num_nodes:
        problems.append(f"SLURM allocated {nodes} node(s) but trainer.num_nodes={num_nodes}; set --trainer.num_nodes "
                        f"{nodes}, or #SBATCH --nodes={num_nodes}")
    return problems


def _device_count(devices: Any, accelerator: str) -> int | None:
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if devices in ("auto", -1, "-1"):
        return torch.cuda.device_count() if accelerator == "cuda" else 1
    return devices if isinstance(devices, int) else None


def overfit_one_batch(trainer: Trainer, module: LightningModule, steps: int = 8) -> list[str]:
    """Train a copy of the run's start on one batch for `steps` steps: the loss must be finite and go down.

    The module's weights and the RNG state are restored afterwards, so the run itself is unchanged.
    """
    if not hasattr(module, "step") or not hasattr(module, "build_optimizer"):
        return []  # not a TaskModule: no loss function to call outside Lightning's loop
    # Private Lightning API (tests/test_lightning_private_api.py): the RNG helpers Lightning's own checkpoints use,
    # the fit loop's data source (the train loader is not built yet at fit start) and the device/batch transfer a
    # training step would apply.
    from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states

    batch = next(iter(trainer.fit_loop._data_source.dataloader()))
    batch = module._apply_batch_transfer_handler(batch)
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    rng, was_training = _collect_rng_states(), module.training
    losses: list[float] = []
    try:
        try:
            # As configure_optimizers builds it (split, layer decay), at the LR scaled to the run's batch size.
            optimizer = module.build_optimizer(module.optimizer_config.scaled_lr(trainer, report=False))
        except ValueError as error:  # torch: "optimizer got an empty parameter list"
            return [f"the optimizer has nothing to train ({error}); unfreeze some parameters"]
        module.train()
        for _ in range(steps):
            torch.manual_seed(0)  # the same dropout masks every step: the loss moves only because the weights did
            with trainer.precision_plugin.forward_context():
                loss = module.step(batch, "train")[0]
            losses.append(float(loss.detach()))
            if not torch.isfinite(loss):
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        module.load_state_dict(saved)
        module.zero_grad(set_to_none=True)
        module.train(was_training)
        _set_rng_states(rng)
    lr = getattr(module.optimizer_config, "lr", "?")
    if not all(map(_finite, losses)):
        where = "on the first batch" if len(losses) == 1 else f"after {len(losses) - 1} step(s) on one batch"
        return [f"the loss is {losses[-1]} {where}; check the data for NaN/Inf and the loss for log(0) or x/0, "
                f"or lower --model.init_args.optimizer.lr (now {lr})"]
    if max(losses) > 10 * abs(losses[0]) + 1e-12:  # up by an order of magnitude on one batch: divergence
        return [f"the loss diverges on one batch ({losses[0]:.4g} -> {max(losses):.4g} in {len(losses) - 1} steps at "
                f"lr {lr}); the LR is far too high: lower --model.init_args.optimizer.lr (e.g. to a tenth)"]
    # Any decrease beyond float noise counts: a bounded-gradient loss (Huber on large targets) moves slowly at first.
    if not min(losses[1:]) < losses[0] - 1e-6 * abs(losses[0]):
        return [f"the model cannot reduce the loss on one batch ({losses[0]:.4g} -> {losses[-1]:.4g} in {steps} "
                f"steps at lr {lr}); check for frozen parameters, a loss that ignores the model output, or an LR "
                f"that is 0 or far too small (--model.init_args.optimizer.lr)"]
    return []


def monitored_metrics(trainer: Trainer) -> dict[str, list[str]]:
    """Metric name -> the components that monitor it (checkpoint, early stopping, plateau scheduler)."""
    watched: dict[str, list[str]] = {}
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            watched.setdefault(callback.monitor, []).append("checkpoint")
        elif isinstance(callback, EarlyStopping) and callback.monitor:
            watched.setdefault(callback.monitor, []).append("early stopping")
    for config in trainer.lr_scheduler_configs:
        if config.reduce_on_plateau and config.monitor:
            watched.setdefault(config.monitor, []).append("plateau scheduler")
    return watched


def missing_monitors(watched: dict[str, list[str]], logged: Iterable[str], only_prefixes: bool = False) -> list[str]:
    """Problems for monitored names that were not logged; with `only_prefixes`, judge only names whose `stage/`
    prefix has logged something (the others may still be logged later in the epoch)."""
    logged = sorted(set(logged))
    prefixes = {name.split("/")[0] for name in logged}
    problems = []
    for name, users in watched.items():
        if name in logged or (only_prefixes and name.split("/")[0] not in prefixes):
            continue
        close = close_names(name, logged, n=1)
        fix = f"set --monitor {close[0]}" if close else "set --monitor to one of them"
        problems.append(f"monitor '{name}' ({', '.join(users)}) is never logged; logged: {', '.join(logged)}; {fix}")
    return problems


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")

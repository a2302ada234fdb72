"""Catch a NaN/Inf loss without a host-device sync per step, name the step, and keep weights that are finite."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from trainkit.doctor.curves import NONFINITE_KEY

RECENT = 50  # losses kept on the device for the "likely cause" (a divergence shows over tens of steps)


class NonFiniteGuardError(RuntimeError):
    """Training met a non-finite value: the run stops (exit 1) after saving the last weights known to be finite."""


class NonFiniteGuard(Callback):
    """Watches the loss of every step for NaN/Inf without reading it back each step.

    `stop` (the default) writes each step's loss into a small ring on the device (one copy, no read) and reads the
    ring back only on logging steps, before every validation and step checkpoint: no host-device sync on the other
    steps. At each check that finds the run clean, every parameter and buffer (BatchNorm statistics included) is
    verified finite and copied aside (one copy of the weights on their device); on a trip those are restored, saved
    as `last-good-stepN.ckpt` (weights only), and the run stops with NonFiniteGuardError naming the first bad step,
    its batch and the likely cause, so no later checkpoint, `best` or test ever sees non-finite weights.
    `skip` reads the loss at every optimizer step (one sync per step, as fp16's GradScaler does) to drop exactly the
    bad update, and restores the buffers that step's forward pass changed.
    """

    def __init__(self, action: Literal["stop", "skip", "off"] = "stop", check_grads: bool = False) -> None:
        """Args:
        action: `stop` ends the run (exit 1) after saving the last finite weights; `skip` drops each bad update
            and trains on (one host-device sync per step); `off` disables the guard.
        check_grads: also record the total gradient norm of every step, so a step whose gradients are non-finite
            while its loss is finite is named exactly (a norm over all gradients per step); without it that step
            shows as the next one, whose loss the bad update made non-finite.
        """
        self.action = action
        self.check_grads = check_grads
        self.events: list[dict[str, Any]] = []
        """Every step caught: {step, epoch, batch_idx, what, cause, saved}."""
        self._loss: Tensor | None = None
        self._batch: Any = None
        self._where: dict[int, tuple[int, int]] = {}
        self._tensors: list[Tensor] = []
        self._buffers: list[Tensor] = []
        self._snapshot: list[Tensor] = []
        self._buffer_backup: list[Tensor] = []
        self._snapshot_step = self._first_unchecked = self._first_step = 0
        self._losses: Tensor | None = None
        self._norms: Tensor | None = None
        self._checkpoint_every: list[int] = []
        self._fp16_scaler = self._distributed = False

    @property
    def enabled(self) -> bool:
        """Whether the guard is on (`action` stop or skip); a disabled callback is not handed to the Trainer."""
        return self.action != "off"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Looked up once: walking the module tree and the trainer's properties every step costs more than the check.
        self._tensors = [t for t in pl_module.state_dict(keep_vars=True).values()
                         if isinstance(t, Tensor) and t.is_floating_point()]
        params = {id(p) for p in pl_module.parameters()}
        self._buffers = [t for t in self._tensors if id(t) not in params]
        self._snapshot = [t.detach().clone() for t in self._tensors]
        self._buffer_backup = [t.detach().clone() for t in self._buffers] if self.action == "skip" else []
        self._snapshot_step = self._first_unchecked = self._first_step = trainer.global_step
        self._checkpoint_every = [c._every_n_train_steps for c in trainer.callbacks
                                  if isinstance(c, ModelCheckpoint) and c._every_n_train_steps]
        # The ring holds every step since the last check: checks come at least every `size - 1` steps.
        size = max(RECENT, trainer.log_every_n_steps, *self._checkpoint_every) + 1
        self._losses = torch.zeros(size, device=pl_module.device)
        self._norms = torch.zeros(size, device=pl_module.device) if self.check_grads else None
        self._fp16_scaler = getattr(trainer.precision_plugin, "scaler", None) is not None
        self._distributed = trainer.world_size > 1

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._where[trainer.global_step] = (trainer.current_epoch, batch_idx)
        self._batch = batch
        if self._buffer_backup:  # the forward pass updates BatchNorm statistics before the loss can be judged
            copy_tensors(self._buffer_backup, self._buffers)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        # Summed over accumulated micro-batches: the sum is non-finite if any of them was.
        loss = loss.detach()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._loss is None or self._losses is None:
            return
        loss, self._loss = self._loss, None
        slot = trainer.global_step % len(self._losses)
        self._losses[slot] = loss  # a copy on the device: nothing is read back here
        norm = None
        if self._norms is not None and not self._fp16_scaler:  # fp16 loss scaling: inf gradients are normal
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            if grads:
                norm = torch.nn.utils.get_total_norm(grads)
                self._norms[slot] = norm
        if self.action == "skip":
            self._skip_if_bad(trainer, pl_module, loss, norm)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        # The loggers read the loss on these steps anyway; checkpoints by step must never hold non-finite weights.
        if (trainer._logger_connector.should_update_logs or any(step % n == 0 for n in self._checkpoint_every)
                or (self._losses is not None and step - self._first_unchecked >= len(self._losses) - 1)):
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:  # validation ends in best/last checkpoints: judge the weights first
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._losses is None or trainer.global_step == self._first_unchecked:
            return  # no step since the last check: nothing changed
        parts = [self._losses] + ([self._norms] if self._norms is not None else [])
        if self._tensors:
            parts.append((~torch.stack([torch.isfinite(t).all() for t in self._tensors]).all()).float().view(1))
        values = torch.cat([p.float() for p in parts]).tolist()  # the one read: logging steps, validation, checkpoints
        size = len(self._losses)
        losses, norms = values[:size], values[size: 2 * size] if self._norms is not None else [0.0] * size
        weights_bad = bool(self._tensors) and values[-1] > 0
        steps = range(self._first_unchecked, trainer.global_step)
        first_bad = next((s for s in steps if not math.isfinite(losses[s % size] + norms[s % size])), -1)
        if self._distributed:  # every process must agree, or one would stop while the others wait for it
            tripped = trainer.strategy.reduce_boolean_decision(first_bad >= 0 or weights_bad, all=False)
        else:
            tripped = first_bad >= 0 or weights_bad
        if not tripped:
            copy_tensors(self._snapshot, self._tensors)
            self._snapshot_step = self._first_unchecked = trainer.global_step
            self._where = {}
            return
        copy_tensors(self._tensors, self._snapshot)
        self._losses = None  # tripped once: the later hooks of this failing run check nothing
        if first_bad < 0:
            self._trip(trainer, pl_module, trainer.global_step - 1, math.nan, math.nan, weights_only=True)
        recent = [losses[s % size] for s in range(max(self._first_step, trainer.global_step - size + 1), first_bad)]
        self._trip(trainer, pl_module, first_bad, losses[first_bad % size], norms[first_bad % size], recent=recent)

    def _trip(self, trainer: Trainer, pl_module: LightningModule, step: int, loss: float, norm: float,
              weights_only: bool = False, recent: list[float] | None = None) -> None:
        epoch, batch_idx = self._where.get(step, (trainer.current_epoch, -1))
        if weights_only:
            what = "the weights went non-finite while every loss was finite"
            cause = "an update too large for the weights: LR too high (try a lower LR)"
        else:
            what = _what(loss, norm)
            cause = self._likely_cause(loss, step, recent or [])
        saved = self._save(trainer, self._snapshot_step)
        self.events.append({"step": step, "epoch": epoch, "batch_idx": batch_idx, "what": what, "cause": cause,
                            "saved": saved})
        for logger in trainer.loggers:
            logger.log_metrics({NONFINITE_KEY: 1.0}, step=step)
            logger.save()
        raise NonFiniteGuardError(
            f"non-finite value at step {step} (epoch {epoch}, batch {batch_idx}): {what}; likely {cause}; the last "
            f"weights known to be finite (step {self._snapshot_step}, every parameter and buffer) are saved to "
            f"{saved}; the run stops (use --nan_guard.action skip to drop bad steps and train on)")

    def _skip_if_bad(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor, norm: Tensor | None) -> None:
        # `skip` must decide before the update: one read per step.
        loss_value, norm_value = torch.stack([loss.float(), norm.float() if norm is not None else
                                              torch.zeros((), device=loss.device)]).tolist()
        bad = not (math.isfinite(loss_value) and math.isfinite(norm_value))
        if self._distributed:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        for param in pl_module.parameters():
            param.grad = None  # torch optimizers leave a parameter without a gradient untouched: the step is dropped
        copy_tensors(self._buffers, self._buffer_backup)  # and the bad batch's BatchNorm update with it
        step = trainer.global_step
        epoch, batch_idx = self._where.get(step, (trainer.current_epoch, -1))
        size = len(self._losses)
        recent = self._losses.roll(-(step % size) - 1).tolist()[-min(RECENT, step - self._first_step) - 1:-1]
        what, cause = _what(loss_value, norm_value), self._likely_cause(loss_value, step, recent)
        self._losses[step % size] = 0.0  # dropped: the next check judges only the steps that were applied
        if self._norms is not None:
            self._norms[step % size] = 0.0
        saved = self._save(trainer, step) if not self.events else None
        self.events.append({"step": step, "epoch": epoch, "batch_idx": batch_idx, "what": what, "cause": cause,
                            "saved": saved})
        for logger in trainer.loggers:
            logger.log_metrics({NONFINITE_KEY: 1.0}, step=step)
        kept = f"weights before it saved to {saved}; " if saved else ""
        rank_zero_warn(f"trainkit: non-finite value at step {step} (epoch {epoch}, batch {batch_idx}): {what}; "
                       f"likely {cause}; {kept}the step was skipped")

    def _likely_cause(self, loss: float, step: int, recent: list[float]) -> str:
        # Only the newest step's batch is held (holding every batch since the last check would cost device memory).
        if step == max(self._where, default=-1) and not _all_finite(self._batch):
            return "bad data: the batch itself holds NaN/Inf"
        finite = [v for v in recent[-RECENT:] if math.isfinite(v)]  # oldest first, up to the bad step
        if len(finite) >= 5 and finite[-1] > 4 * min(finite):
            return (f"divergence: the loss rose from {min(finite):.3g} to {finite[-1]:.3g} over the last "
                    f"{len(finite)} steps (LR too high; try --trainer.gradient_clip_val 1.0 and a lower LR)")
        if math.isfinite(loss):
            return "exploding gradients or an overflow in backward (try --trainer.gradient_clip_val 1.0)"
        return "a log or division by zero in the loss, or an fp16 overflow (try --trainer.precision 32-true)"

    def _save(self, trainer: Trainer, step: int) -> str:
        return save_last_good(trainer, step)


def save_last_good(trainer: Trainer, step: int) -> str:
    """Save the model's current weights (those of step `step`) as checkpoints/last-good-stepN.ckpt; return its path."""
    callback = trainer.checkpoint_callback
    folder = Path(getattr(callback, "dirpath", None) or Path(trainer.log_dir or trainer.default_root_dir) /
                  "checkpoints")
    path = folder / f"last-good-step{step}.ckpt"
    index = 0
    while path.exists():  # never write over anything already there
        index += 1
        path = folder / f"last-good-step{step}-{index}.ckpt"
    # Weights only: the optimizer's moments may already hold the bad step's NaN.
    trainer.save_checkpoint(path, weights_only=True)
    # The weights are step `step`'s (restored from the snapshot): the file says so too.
    if trainer.is_global_zero and step != trainer.global_step and path.is_file():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint["global_step"] = step
        torch.save(checkpoint, path)
    return str(path)


def copy_tensors(targets: list[Tensor], sources: list[Tensor]) -> None:
    """Copy tensors in place, one fused op; in place on parameters, so outside autograd."""
    if targets:
        with torch.no_grad():
            torch._foreach_copy_(targets, sources)


def _what(loss: float, norm: float) -> str:
    return f"loss={loss:.4g}" if not math.isfinite(loss) else f"loss={loss:.4g} but gradient norm={norm}"


def _all_finite(batch: Any) -> bool:
    if isinstance(batch, Tensor):
        return not batch.is_floating_point() or bool(torch.isfinite(batch).all())
    if isinstance(batch, dict):
        return all(_all_finite(v) for v in batch.values())
    if isinstance(batch, list | tuple):
        return all(_all_finite(v) for v in batch)
    return True

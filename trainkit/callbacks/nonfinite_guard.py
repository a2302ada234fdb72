"""Catch a NaN/Inf loss or gradient at the step it happens, before it reaches the weights."""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from trainkit.doctor.curves import NONFINITE_KEY


class NonFiniteGuardError(RuntimeError):
    """The weights themselves went non-finite: training cannot continue, and nothing bad is saved over the run."""


class NonFiniteGuard(Callback):
    """Checks the loss and the total gradient norm at every optimizer step (one scalar read per step, as fp16's
    GradScaler does). On a non-finite value it drops the step's update, names the step, the batch and the likely
    cause, saves the last good weights beside the run's checkpoints, and then skips the step or stops the run."""

    def __init__(self, action: Literal["stop", "skip", "off"] = "stop") -> None:
        """Args:
        action: `stop` ends the run after saving the last good weights; `skip` drops the bad update and trains on;
            `off` disables the guard (and its per-step read).
        """
        self.action = action
        self.events: list[dict[str, Any]] = []
        """Every step caught: {step, epoch, batch_idx, what, cause, saved}."""
        self._loss: Tensor | None = None
        self._batch: Any = None
        self._batch_idx = -1
        self._recent: deque[float] = deque(maxlen=50)
        self._params: list[Tensor] = []
        self._fp16_scaler = self._distributed = False

    @property
    def enabled(self) -> bool:
        """Whether the guard is on (`action` stop or skip); a disabled callback is not handed to the Trainer."""
        return self.action != "off"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Looked up once: walking the module tree and the trainer's properties every step costs more than the check.
        self._params = list(pl_module.parameters())
        self._fp16_scaler = getattr(trainer.precision_plugin, "scaler", None) is not None
        self._distributed = trainer.world_size > 1

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch, self._batch_idx = batch, batch_idx

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        # Summed over accumulated micro-batches: the sum is non-finite if any of them was.
        loss = loss.detach().float()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._loss is None:
            return
        grads = [p.grad for p in self._params if p.grad is not None]
        if grads and not self._fp16_scaler:  # fp16 loss scaling: inf gradients are normal, the scaler skips those
            norm = torch.nn.utils.get_total_norm(grads).float().to(self._loss.device)
            loss_value, norm_value = torch.stack([self._loss, norm]).tolist()
        else:
            loss_value, norm_value = self._loss.item(), 0.0
        self._loss = None
        bad = not (math.isfinite(loss_value) and math.isfinite(norm_value))
        if self._distributed:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            self._recent.append(loss_value)
            return
        for param in pl_module.parameters():
            param.grad = None  # torch optimizers leave a parameter without a gradient untouched: the step is dropped
        self._caught(trainer, pl_module, loss_value, norm_value)

    def _caught(self, trainer: Trainer, pl_module: LightningModule, loss: float, norm: float) -> None:
        step, epoch = trainer.global_step, trainer.current_epoch
        what = f"loss={loss:.4g}" if not math.isfinite(loss) else f"loss={loss:.4g} but gradient norm={norm}"
        weights_ok = all(bool(torch.isfinite(p).all()) for p in pl_module.parameters())
        cause = self._likely_cause(loss, weights_ok)
        saved = self._save(trainer, step) if weights_ok and not self.events else None
        self.events.append({"step": step, "epoch": epoch, "batch_idx": self._batch_idx, "what": what,
                            "cause": cause, "saved": saved})
        for logger in trainer.loggers:
            logger.log_metrics({NONFINITE_KEY: 1.0}, step=step)
        where = f"non-finite value at step {step} (epoch {epoch}, batch {self._batch_idx}): {what}; likely {cause}"
        if not weights_ok:
            # Lightning would otherwise write these weights into last.ckpt over the good ones.
            raise NonFiniteGuardError(f"{where}; the weights are already non-finite, so the run stops without saving; "
                                      "the last good weights are the run's existing checkpoints")
        kept = f"last good weights saved to {saved}" if saved else "the update was dropped"
        if self.action == "stop":
            trainer.should_stop = True
            rank_zero_warn(f"trainkit: {where}; {kept}; stopping (use --nan_guard.action skip to train on)")
        else:
            rank_zero_warn(f"trainkit: {where}; {kept}; the step was skipped")

    def _likely_cause(self, loss: float, weights_ok: bool) -> str:
        if not _all_finite(self._batch):
            return "bad data: the batch itself holds NaN/Inf"
        if not weights_ok:
            return "an update too large for the weights: LR too high"
        finite = [v for v in self._recent if math.isfinite(v)]
        if len(finite) >= 5 and finite[-1] > 4 * min(finite):
            return (f"divergence: the loss rose from {min(finite):.3g} to {finite[-1]:.3g} over the last "
                    f"{len(finite)} steps (LR too high; try --trainer.gradient_clip_val 1.0 and a lower LR)")
        if math.isfinite(loss):
            return "exploding gradients or an overflow in backward (try --trainer.gradient_clip_val 1.0)"
        return "a log or division by zero in the loss, or an fp16 overflow (try --trainer.precision 32-true)"

    def _save(self, trainer: Trainer, step: int) -> str | None:
        callback = trainer.checkpoint_callback
        folder = Path(getattr(callback, "dirpath", None) or Path(trainer.log_dir or trainer.default_root_dir) /
                      "checkpoints")
        path = folder / f"last-good-step{step}.ckpt"
        index = 0
        while path.exists():  # never write over anything already there
            index += 1
            path = folder / f"last-good-step{step}-{index}.ckpt"
        trainer.save_checkpoint(path)
        return str(path)


def _all_finite(batch: Any) -> bool:
    if isinstance(batch, Tensor):
        return not batch.is_floating_point() or bool(torch.isfinite(batch).all())
    if isinstance(batch, dict):
        return all(_all_finite(v) for v in batch.values())
    if isinstance(batch, list | tuple):
        return all(_all_finite(v) for v in batch)
    return True

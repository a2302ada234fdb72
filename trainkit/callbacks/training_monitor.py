"""Gradient norm, clipping fraction and parameter-update ratio, logged with the run every few steps."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor


class TrainingMonitor(Callback):
    """Logs `train/grad_norm`, `train/clip_frac` (when clipping is on) and `train/update_ratio`.

    The values are computed on the device and read back only on logging steps, so there is no per-step sync.
    """

    enabled = True
    """Always on (the CLI leaves out callbacks whose `enabled` is False)."""

    def __init__(self, every_n_steps: int | None = None, per_module: bool = False, update_ratio: bool = True) -> None:
        """Args:
        every_n_steps: log every N optimizer steps; None follows --trainer.log_every_n_steps.
        per_module: also log the gradient norm of each top-level module (`train/grad_norm.<name>`).
        update_ratio: log ||update|| / ||weights|| (healthy is about 1e-3; needs a copy of the weights on those steps).
        """
        self.every_n_steps = every_n_steps
        self.per_module = per_module
        self.update_ratio = update_ratio
        self._clipped: Tensor | None = None
        self._counted = 0
        self._before: list[Tensor] | None = None
        self._params: list[Tensor] = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        clip = trainer.gradient_clip_val
        logging = self._is_logging_step(trainer)
        if not clip and not logging:
            return
        params = [p for p in pl_module.parameters() if p.grad is not None]
        if not params:
            return
        by_value = trainer.gradient_clip_algorithm == "value"
        norm = torch.nn.utils.get_total_norm([p.grad for p in params], float("inf") if by_value else 2.0)
        if clip:
            # Lightning clips right after this hook; the norm before clipping tells whether clipping will act.
            acted = (norm > clip).float()
            self._clipped = acted if self._clipped is None else self._clipped + acted
            self._counted += 1
        if not logging:
            return
        metrics = {"train/grad_norm": norm if not by_value else torch.nn.utils.get_total_norm([p.grad for p in params])}
        if clip and self._clipped is not None:
            metrics["train/clip_frac"] = self._clipped / max(self._counted, 1)
            self._clipped, self._counted = None, 0
        if self.per_module:
            for name, child in pl_module.named_children():
                grads = [p.grad for p in child.parameters() if p.grad is not None]
                if grads:
                    metrics[f"train/grad_norm.{name}"] = torch.nn.utils.get_total_norm(grads)
        if self.update_ratio:
            self._before = [p.detach().clone() for p in params]
            self._params = params
        _log(trainer, metrics)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._before is None:
            return
        deltas = [p.detach() - b for p, b in zip(self._params, self._before, strict=True)]
        ratio = torch.nn.utils.get_total_norm(deltas) / torch.nn.utils.get_total_norm(self._before).clamp_min(1e-12)
        self._before = None
        # Logged at the step the update was computed for (the optimizer step has advanced global_step by one).
        _log(trainer, {"train/update_ratio": ratio}, step=trainer.global_step - 1)

    def _is_logging_step(self, trainer: Trainer) -> bool:
        every = self.every_n_steps or trainer.log_every_n_steps
        return every > 0 and (trainer.global_step + 1) % every == 0


def _log(trainer: Trainer, metrics: dict[str, Tensor], step: int | None = None) -> None:
    """Write straight to the run's loggers at the optimizer step, independent of `self.log`'s cadence."""
    if not trainer.loggers:
        return
    values = {key: float(value) for key, value in metrics.items()}
    for logger in trainer.loggers:
        logger.log_metrics(values, step=trainer.global_step if step is None else step)

"""Catch a loss spike at its step, decided alike on every rank: warn, drop the batch's gradient, or roll back to the
last good weights with a lower LR; the spiking batch is named in the run folder's spikes.jsonl for the doctor."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from trainkit.callbacks.nonfinite_guard import copy_tensors, save_last_good
from trainkit.doctor.spikes import SPIKES_FILE
from trainkit.errors import ConfigError

MAD_TO_STD = 1.4826  # the median absolute deviation of a normal distribution times this is its standard deviation
SCALE_FLOOR = 0.05  # the spread is at least 5% of the median: a flat, converged loss has a MAD near 0
SPIKE_KEY = "train/spike"
MAX_UNCHECKED = 1000  # steps held between two checks at most: a read every 1000 steps where logging is rarer
SAMPLE_ID_KEYS = ("index", "indices", "idx", "sample_id", "sample_ids")
"""Keys of a dict batch holding each sample's id in the dataset: recorded for the spiking batch when present."""


class SpikeGuard(Callback):
    """Flags a step whose loss rises above `median + threshold x spread` of the last `window` accepted losses.

    The spread is the robust standard deviation (1.4826 x MAD), at least 5% of the median. A flagged loss enters the
    window as the median, so one spike does not hide the next. With gradient accumulation the loss is the sum over
    the step's micro-batches.

    - `warn` (the default) changes nothing: each step's loss is kept on the device (no read) and judged where the
      loggers read it anyway (logging steps, before validation, at the end of an epoch); spikes are warned about and
      written to spikes.jsonl. No host-device sync on other steps; under DDP the losses since the last check are
      averaged over ranks there (one all-reduce per check), so every rank judges the same losses.
    - `skip` judges each step on the device before the optimizer step and, on a spike, zeroes that step's gradients
      and undoes its BatchNorm update with `torch.where`, so no host read is needed (under DDP one scalar all-reduce
      a step makes every rank agree). The optimizer still takes its step with zero gradients: plain SGD stands
      still; momentum and Adam carry on with their moments, as on a batch that taught nothing.
    - `rollback` judges at the same points as `warn`; on a spike it restores the weights and optimizer state of the
      last clean check, multiplies every LR by `lr_factor`, saves those weights as `last-good-stepN.ckpt`, and trains
      on. The steps since that check are lost (up to --trainer.log_every_n_steps). It holds a copy of the weights and
      the optimizer state, refreshed at each clean check (the same reads as the non-finite guard).
    """

    def __init__(self, action: Literal["warn", "skip", "rollback", "off"] = "warn", threshold: float = 6.0,
                 window: int = 50, lr_factor: float = 0.5) -> None:
        """Args:
        action: `warn` only reports spikes; `skip` drops the spiking batch's gradients; `rollback` restores the last
            good weights and cuts the LR; `off` disables the guard.
        threshold: how many robust standard deviations above the running median a loss must be to count as a spike.
        window: how many of the latest accepted losses the median and spread are taken over; the first `window`
            steps are never judged.
        lr_factor: `rollback` multiplies every LR (and the schedule's base LRs) by this at each rollback.
        """
        if threshold <= 0:
            raise ConfigError(f"spike_guard.threshold={threshold} must be above 0; 6 flags only far outliers")
        if window < 5:
            raise ConfigError(f"spike_guard.window={window} is too few losses for a median; use 20 or more")
        if not 0 < lr_factor <= 1:
            raise ConfigError(f"spike_guard.lr_factor={lr_factor} must be in (0, 1], e.g. 0.5")
        self.action = action
        self.threshold = threshold
        self.window = window
        self.lr_factor = lr_factor
        self.events: list[dict[str, Any]] = []
        """Every spike caught: {step, epoch, batch_idx, loss, median, limit, action, sample_ids, saved}."""
        self._ring: Tensor | None = None
        self._filled = 0
        self._loss: Tensor | None = None
        self._where: tuple[int, int, Any] = (0, 0, None)
        self._records: list[Tensor] = []
        self._meta: list[tuple[int, int, int, Any]] = []
        self._buffers: list[Tensor] = []
        self._buffer_backup: list[Tensor] = []
        self._tensors: list[Tensor] = []
        self._snapshot: list[Tensor] = []
        self._optimizer_snapshot: list[dict[str, Any]] = []
        self._snapshot_step = 0
        self._saved: str | None = None
        self._run_dir: str | None = None
        self._distributed = False

    @property
    def enabled(self) -> bool:
        """Whether the guard is on; a disabled callback is not handed to the Trainer."""
        return self.action != "off"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._ring = torch.zeros(self.window, device=pl_module.device)
        self._filled = 0
        self._records, self._meta = [], []
        self._distributed = trainer.world_size > 1
        self._run_dir = trainer.log_dir  # a broadcast: asked here on every rank, never on one rank alone
        state = [t for t in pl_module.state_dict(keep_vars=True).values()
                 if isinstance(t, Tensor) and t.is_floating_point()]
        params = {id(p) for p in pl_module.parameters()}
        if self.action == "skip":
            self._buffers = [t for t in state if id(t) not in params]
            self._buffer_backup = [t.detach().clone() for t in self._buffers]
        if self.action == "rollback":
            self._tensors = state
            self._take_snapshot(trainer)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._where = (trainer.current_epoch, batch_idx, _sample_ids(batch))
        if self._buffer_backup:  # the forward pass updates BatchNorm statistics before the loss can be judged
            copy_tensors(self._buffer_backup, self._buffers)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        mean = getattr(pl_module, "step_loss", None)  # a task that backpropagates a sum gives its mean here
        loss = (loss if mean is None else mean / trainer.accumulate_grad_batches).detach().float()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._loss is None or self._ring is None:
            return
        loss, self._loss = self._loss, None
        self._meta.append((trainer.global_step, *self._where))
        if self.action != "skip":
            self._records.append(loss)  # judged at the next check: nothing is read here
            return
        slot = self._filled % self.window
        if self._filled < self.window:
            self._ring[slot] = loss
            self._records.append(torch.stack([loss, loss, loss, torch.zeros_like(loss)]))
        else:
            limit, median = spike_limit(self._ring, self.threshold)
            spike = loss > limit
            if self._distributed:  # every rank drops the step if any rank's batch spiked: one scalar, on the device
                spike = spike.float()
                torch.distributed.all_reduce(spike, op=torch.distributed.ReduceOp.MAX)
                spike = spike.bool()
            self._ring[slot] = torch.where(spike, median, loss)
            with torch.no_grad():
                for param in pl_module.parameters():
                    if param.grad is not None:
                        param.grad.masked_fill_(spike, 0.0)
                for buffer, before in zip(self._buffers, self._buffer_backup, strict=True):
                    buffer.copy_(torch.where(spike, before, buffer))
            self._records.append(torch.stack([loss, median, limit, spike.float()]))
        self._filled += 1

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer._logger_connector.should_update_logs or len(self._records) >= MAX_UNCHECKED:
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._records or self._ring is None:
            return
        records, meta = self._records, self._meta
        self._records, self._meta = [], []
        if self.action == "skip":  # judged on the device at each step already: read the verdicts
            rows = torch.stack(records).tolist()
            spikes = [(m, row[0], row[1], row[2]) for m, row in zip(meta, rows, strict=True) if row[3] > 0]
        else:
            losses = torch.stack(records)
            if self._distributed:  # every rank judges the mean loss over ranks: the same spikes, the same rollback
                losses = trainer.strategy.reduce(losses, reduce_op="mean")
            spikes = self._judge(losses.tolist(), meta)
        if self.action == "rollback":
            if spikes:
                self._roll_back(trainer, spikes)
            else:
                self._take_snapshot(trainer)
        for (step, epoch, batch_idx, ids), loss, median, limit in spikes:
            self._record(trainer, step, epoch, batch_idx, ids, loss, median, limit)

    def _judge(self, losses: list[float], meta: list[tuple[int, int, int, Any]]) -> list[tuple[Any, ...]]:
        """The host side of `skip`'s device rule, over the steps since the last check; updates the window."""
        assert self._ring is not None
        ring = self._ring.tolist()
        spikes = []
        for where, loss in zip(meta, losses, strict=True):
            slot = self._filled % self.window
            self._filled += 1
            if self._filled <= self.window:
                ring[slot] = loss
                continue
            limit, median = (float(v) for v in spike_limit(torch.tensor(ring), self.threshold))
            spike = loss > limit
            ring[slot] = median if spike else loss
            if spike:
                spikes.append((where, loss, median, limit))
        self._ring.copy_(torch.tensor(ring))
        return spikes

    def _take_snapshot(self, trainer: Trainer) -> None:
        if not self._snapshot:
            self._snapshot = [t.detach().clone() for t in self._tensors]
        else:
            copy_tensors(self._snapshot, self._tensors)
        self._optimizer_snapshot = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
        self._snapshot_step = trainer.global_step

    def _roll_back(self, trainer: Trainer, spikes: list[tuple[Any, ...]]) -> None:
        copy_tensors(self._tensors, self._snapshot)
        for optimizer, state in zip(trainer.optimizers, self._optimizer_snapshot, strict=True):
            optimizer.load_state_dict(copy.deepcopy(state))
            for group in optimizer.param_groups:
                for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                    if isinstance(group.get(key), float):
                        group[key] *= self.lr_factor
        for config in trainer.lr_scheduler_configs:  # a schedule sets the LR from its base LRs at every step
            scheduler = config.scheduler
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [lr * self.lr_factor for lr in scheduler.base_lrs]
        saved = self._saved = save_last_good(trainer, self._snapshot_step)
        first = spikes[0][0][0] if spikes else trainer.global_step
        rank_zero_warn(f"trainkit: loss spike at step {first}: rolled back to the weights of step "
                       f"{self._snapshot_step} (saved to {saved}) and multiplied the LR by {self.lr_factor}")

    def _record(self, trainer: Trainer, step: int, epoch: int, batch_idx: int, ids: Any, loss: float, median: float,
                limit: float) -> None:
        sample_ids = ids.tolist() if isinstance(ids, Tensor) else ids
        event = {"step": step, "epoch": epoch, "batch_idx": batch_idx, "loss": loss, "median": median,
                 "limit": limit, "action": self.action, "sample_ids": sample_ids,
                 "saved": self._saved if self.action == "rollback" else None}
        self.events.append(event)
        for logger in trainer.loggers:
            logger.log_metrics({SPIKE_KEY: 1.0}, step=step)
        if not trainer.is_global_zero:
            return
        if self._run_dir:
            path = Path(self._run_dir) / SPIKES_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as file:
                file.write(json.dumps(event) + "\n")
        if self.action != "rollback":
            done = {"warn": "nothing was changed", "skip": "its gradients were dropped"}[self.action]
            rank_zero_warn(f"trainkit: loss spike at step {step} (epoch {epoch}, batch {batch_idx}): loss {loss:.4g} "
                           f"over a limit of {limit:.4g} (median {median:.4g}); {done}; see {SPIKES_FILE}")


def spike_limit(window: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(limit, median) of a window of losses: median + threshold x max(1.4826 x MAD, 5% of |median|)."""
    median = window.median()
    spread = torch.maximum(MAD_TO_STD * (window - median).abs().median(), SCALE_FLOOR * median.abs())
    return median + threshold * spread, median


def _sample_ids(batch: Any) -> Any:
    """The batch's sample ids where a dict batch carries them (kept on the device, read only for a spike)."""
    if isinstance(batch, dict):
        for key in SAMPLE_ID_KEYS:
            if key in batch:
                return batch[key]
    return None

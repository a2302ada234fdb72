"""Checkpointing with trainkit's defaults: `best.ckpt` by the monitored metric and `last.ckpt`, written atomically.

The two have separate triggers: the best checkpoint is judged at every validation (every `every_n_epochs`-th
epoch), against the metric that validation just computed; `last.ckpt`, the resume point, is also refreshed at the
step or time interval. Lightning's ModelCheckpoint has one trigger for both, so a step interval made it pick `best`
at step saves against the previous epoch's metric and skip the final validation.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from trainkit.errors import ConfigError
from trainkit.hpc.atomic import TMP_SUFFIX, replace_atomically, use_staged_io


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose defaults give each run `checkpoints/best.ckpt` and `checkpoints/last.ckpt`."""

    enabled = True
    """Always on (the CLI leaves out callbacks whose `enabled` is False)."""

    def __init__(
        self,
        monitor: str | None = "val/loss",
        mode: Literal["min", "max"] = "min",
        filename: str = "best",
        save_last: bool = True,
        save_top_k: int = 1,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        train_time_interval_minutes: float | None = None,
        save_weights_only: bool = False,
        keep_last: int = 0,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            monitor: metric that picks the best checkpoint (set once with the top-level --monitor).
            mode: whether a lower (min) or higher (max) monitored value is better.
            filename: file name of the best checkpoint.
            save_last: also keep `last.ckpt`, the point to resume from.
            save_top_k: how many best checkpoints to keep (-1 keeps all).
            every_n_epochs: judge the best checkpoint at the validation of every N-th epoch (default 1).
            every_n_train_steps: also refresh last.ckpt every N optimizer steps (mid-epoch resume points).
            train_time_interval_minutes: also refresh last.ckpt every this many minutes of training.
            save_weights_only: drop optimizer and scheduler state (smaller, but cannot resume exactly).
            keep_last: also write `epoch=E-step=S.ckpt` at each judged epoch and keep the newest N of them (older ones
                are deleted, never the best or the one this fit resumed from); 0 writes none.
        """
        from datetime import timedelta

        if keep_last < 0:
            raise ConfigError(f"--checkpoint.keep_last {keep_last} is negative; pass 0 (none) or the number to keep")
        self.keep_last = keep_last

        interval = timedelta(minutes=train_time_interval_minutes) if train_time_interval_minutes else None
        self.best_every_n_epochs = every_n_epochs if every_n_epochs is not None else 1
        has_interval = bool(every_n_train_steps) or interval is not None
        super().__init__(
            monitor=monitor,
            mode=mode,
            filename=filename,
            save_last=save_last,
            save_top_k=save_top_k,
            every_n_epochs=None if has_interval else every_n_epochs,  # Lightning allows one trigger; best has its own
            every_n_train_steps=every_n_train_steps,
            train_time_interval=interval,
            save_weights_only=save_weights_only,
            auto_insert_metric_name=False,
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        use_staged_io(trainer.strategy)  # every save of the run (best, last, the guard's) stays beside its target

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        """At the step/time interval refresh `last.ckpt` only: the best checkpoint waits for a validation."""
        if self._judging_skipped(trainer) or self._last_global_step_saved == trainer.global_step:
            return
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        if self._train_time_interval is not None:
            now = time.monotonic()
            late = self._last_time_checked is not None and (
                now - self._last_time_checked >= self._train_time_interval.total_seconds())
            if trainer.strategy.broadcast(late):  # one decision for all ranks, or a save would hang
                self._last_time_checked, due = now, True
        if due and self.save_last:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Judge the best checkpoint on the metrics this validation produced, whatever was saved at this step."""
        if not self._judging_skipped(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._judge(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Without a validation loop the best checkpoint is judged when the training epoch ends."""
        if not self._judging_skipped(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._judge(trainer)

    def _judge(self, trainer: Trainer) -> None:
        candidates = self._monitor_candidates(trainer)
        if self.best_every_n_epochs >= 1 and (trainer.current_epoch + 1) % self.best_every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates)
            if self.keep_last:
                self._save_periodic(trainer)
        if self.save_last and self._last_global_step_saved == trainer.global_step:
            self._save_last_checkpoint(trainer, candidates)  # the resume point then knows the best just judged

    def _save_periodic(self, trainer: Trainer) -> None:
        """Write this epoch's `epoch=E-step=S.ckpt`, then delete all but the newest `keep_last` of them (on disk, so
        a resumed run counts the files of the runs before it)."""
        folder = Path(str(self.dirpath))
        self._save_checkpoint(trainer, str(folder / f"epoch={trainer.current_epoch}-step={trainer.global_step}.ckpt"))
        kept = {Path(p).resolve() for p in (self.best_model_path, trainer.ckpt_path, *self.best_k_models) if p}
        periodic = sorted(folder.glob("epoch=*-step=*.ckpt"), key=_step_of)
        for old in periodic[:-self.keep_last]:
            if old.resolve() not in kept:
                self._remove_checkpoint(trainer, str(old))

    @staticmethod
    def _judging_skipped(trainer: Trainer) -> bool:
        from lightning.pytorch.trainer.states import TrainerFn

        return bool(trainer.fast_dev_run) or trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume a run whose folder moved: its best/last paths are taken to this folder, never the old one."""
        old = state_dict.get("dirpath")
        if old is None or self.dirpath is None or Path(old) == Path(self.dirpath):
            super().load_state_dict(state_dict)
            return
        state = dict(state_dict, dirpath=self.dirpath)

        def moved(path: Any) -> str:
            here = Path(self.dirpath) / Path(str(path)).name if path else None
            return str(here) if here is not None and here.exists() else ""

        state["best_k_models"] = {moved(k): v for k, v in (state.get("best_k_models") or {}).items() if moved(k)}
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[key] = moved(state.get(key))
        if not state["best_model_path"]:  # the best file stayed behind: judge afresh in this folder
            state["best_model_score"], state["best_k_models"], state["kth_best_model_path"] = None, {}, ""
        super().load_state_dict(state)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning only saves `last` here when nothing was saved in this session; with every_n_train_steps that
        # leaves the final steps out of last.ckpt. The finished run's weights always end up in it.
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        # Private ModelCheckpoint method (as are _save_last_checkpoint and _monitor_candidates): every save passes
        # here, so overriding it makes each one atomic.
        tmp = filepath + TMP_SUFFIX
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            replace_atomically(tmp, filepath)
        trainer.strategy.barrier("trainkit.RunCheckpoint")
        self._last_checkpoint_saved = filepath

    def save_now(self, trainer: Trainer) -> str:
        """Write `last.ckpt` now (e.g. on preemption) and return its path."""
        candidates = self._monitor_candidates(trainer)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
            return self.last_model_path
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        self._save_checkpoint(trainer, filepath)
        return filepath


def _step_of(path: Path) -> int:
    """The step in a periodic checkpoint's name `epoch=E-step=S.ckpt` (-1 if the name holds none)."""
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1

"""Preemption: on a cluster's warning signal, save a resumable checkpoint at the next batch, requeue, and exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from trainkit.errors import ConfigError
from trainkit.hpc.atomic import TMP_SUFFIX, replace_atomically
from trainkit.hpc.slurm_env import slurm_job_id


class Preempted(SystemExit):
    """Raised to end a fit after its preemption checkpoint is saved (exit code 0 when the job was requeued)."""


class Preemption(Callback):
    """Turn SLURM's pre-timeout signal (or a SIGTERM) into a checkpoint at a batch boundary, a requeue and an exit.

    The signal only sets a flag; the work happens at the end of the current training batch, where the loop state is
    consistent, so the checkpoint resumes exactly. Under DDP the ranks agree on the batch before saving. This replaces
    Lightning's SLURM handler, which saves from inside the signal handler, i.e. possibly mid-step.
    """

    def __init__(self, signals: tuple[str, ...] = ("SIGUSR1", "SIGTERM"), requeue: bool = True) -> None:
        """Args:
        signals: signals that mean "save and stop soon" (sbatch --signal=SIGUSR1@90 sends SIGUSR1 90 s early).
        requeue: inside a SLURM batch job, requeue it after saving (on SIGUSR1) so that it resumes by itself.
        """
        unknown = [name for name in signals if not isinstance(getattr(signal, name, None), signal.Signals)]
        if unknown:
            raise ConfigError(f"preemption.signals: {', '.join(unknown)} is not a signal; use names like SIGUSR1, "
                              "SIGTERM")
        self.signals = tuple(getattr(signal, name) for name in signals)
        self.requeue = requeue
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def enabled(self) -> bool:
        """Whether any signal is handled; a disabled callback is not handed to the Trainer."""
        return bool(self.signals)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        self.received = None
        for signum in self.signals:
            # Registered before Lightning's own: it then leaves SIGUSR1 to us and chains us after its SIGTERM notifier.
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        path = _save_resume_checkpoint(trainer)
        if threading.current_thread() is threading.main_thread():
            # Saved and stopping. SLURM answers a requeue with SIGTERM to every task, and Lightning's SIGTERM handler
            # runs a collective with ranks SLURM is killing: its error cut this rank's line below off a job's log.
            self._previous.setdefault(signal.SIGTERM, signal.getsignal(signal.SIGTERM))  # teardown restores it
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        name = signal.Signals(self.received).name if self.received is not None else "a signal on another rank"
        job = slurm_job_id()
        requeued = False
        if trainer.is_global_zero and self.requeue and job is not None and self.received != signal.SIGTERM:
            # SIGTERM under SLURM is a cancel, a time-out or a preemption that requeues by itself: no requeue from us.
            requeued = subprocess.run(["scontrol", "requeue", job], check=False).returncode == 0
        if trainer.is_global_zero:
            then = f"requeued SLURM job {job}; it resumes from there" if requeued else (
                "resume with the same command and --ckpt_path last")
            print(f"trainkit: {name} at epoch {trainer.current_epoch} step {trainer.global_step}: saved {path}; "
                  f"{then}", file=sys.stderr, flush=True)
        raise Preempted(0 if requeued else 1)


def _save_resume_checkpoint(trainer: Trainer) -> str:
    """Save `last.ckpt` through the run's checkpoint callback, or atomically beside the logs without one."""
    save_now = getattr(trainer.checkpoint_callback, "save_now", None)  # trainkit's RunCheckpoint
    if save_now is not None:
        return save_now(trainer)
    path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    tmp = str(path) + TMP_SUFFIX
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        replace_atomically(tmp, path)
    return str(path)

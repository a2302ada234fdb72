"""Inside a trial process: an ordinary `trainkit fit` run with one callback, attached by flags (`reporter_flags`), that
reports the monitored value to the study's journal at each validation and stops the run when the pruner says so."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from trainkit.errors import ConfigError
from trainkit.tune import study as studies

PRUNED_AT = "pruned_at"
"""User attribute: the validation at which the trial was pruned."""
VALUE = "value"
"""User attribute: the trial's objective, the best monitored value, written when its fit ends."""
FATAL = "fatal"
"""User attribute: an error every trial would hit (a monitor never logged); the runner stops the study on it."""
SCHEDULE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.check_val_every_n_epoch",
                 "trainer.val_check_interval")
"""Searched keys that change how many validations a trial has: trials are then compared by fraction of their run."""
PARENT_ENV = "TRAINKIT_TUNE_PARENT"
"""The runner's pid, given to each trial so it dies with the runner (and is resumed by the next one)."""


def reporter_flags(folder: Path, number: int) -> list[str]:
    """The `trainkit fit` flags that attach trial `number`'s reporter (after any callbacks of the config)."""
    reporter = {"class_path": f"{__name__}.TrialReporter", "init_args": {"folder": str(folder), "number": number}}
    return [f"--trainer.callbacks+={json.dumps(reporter)}"]


class TrialReporter(Callback):
    """Report `--monitor` at each validation (steps 1, 2, ...) and stop the fit when the trial is pruned; the
    validation count is checkpointed, so a resumed trial keeps counting where it was."""

    def __init__(self, folder: str | Path, number: int) -> None:
        """Args:
        folder: the study's folder (its journal and settings).
        number: the trial this run is.
        """
        _die_with_runner()
        self.folder, self.number = Path(folder), number
        self.settings = studies.read_settings(self.folder)
        self.validations = 0
        self.reported_step = 0
        self.best: float | None = None
        self.stop_reason: str | None = None  # "pruned": the CLI then skips the test pass and says why the fit stopped
        self._trial: Any = None

    @property
    def trial(self) -> Any:
        """The Optuna trial, opened on first use (rank zero only)."""
        if self._trial is None:
            import optuna

            storage = studies.storage(self.folder)
            study_id = storage.get_study_id_from_name(self.settings.name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
            study = optuna.load_study(study_name=self.settings.name, storage=storage,
                                      sampler=optuna.samplers.RandomSampler(),  # never samples here
                                      pruner=studies.make_pruner(self.settings))
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations, "best": self.best, "reported_step": self.reported_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations, self.best = state_dict["validations"], state_dict["best"]
        self.reported_step = state_dict.get("reported_step", self.validations)

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check_monitor(trainer)  # seconds into the first trial, before the Doctor's own check of it

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._check_monitor(trainer)
        value = float(trainer.callback_metrics[self.settings.monitor])  # once per validation, not per step
        self.validations += 1
        if math.isfinite(value) and (self.best is None or (value > self.best if self.settings.mode == "max"
                                                          else value < self.best)):
            self.best = value
        prune = False
        if trainer.is_global_zero:
            steps = report_steps(self.reported_step, self.validations, self._validations_in_run(trainer))
            for step in steps:
                self.trial.report(value, step)
            self.reported_step = steps[-1] if steps else self.reported_step
            spared = warmup_validations(trainer, self.settings.warmup_validations)
            prune = bool(steps) and self.validations > spared and self.trial.should_prune()
            if prune:
                self.trial.set_user_attr(PRUNED_AT, self.validations)
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune)
        if prune:
            self.stop_reason = "pruned"
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(f"trainkit tune: trial {self.number} pruned at validation {self.validations} "
                      f"({self.settings.monitor}={value:.4g})", flush=True)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback
        value = self.best
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor == self.settings.monitor and (
                checkpoint.best_model_score is not None):
            value = float(checkpoint.best_model_score)  # the run's own best: what best.ckpt holds
        if self.validations == 0:
            self.trial.set_user_attr(FATAL, "the run finished without a validation, so there is nothing to tune on; "
                                            "check --trainer.limit_val_batches and check_val_every_n_epoch")
        else:  # NaN when every validation diverged: Optuna then marks the trial failed
            self.trial.set_user_attr(VALUE, float("nan") if value is None else value)

    def _validations_in_run(self, trainer: Trainer) -> int | None:
        """This trial's number of validations when the search changes run lengths (so steps become percent of the
        run), else None (steps are validations)."""
        if not any(key.removeprefix("--") in SCHEDULE_KEYS for key in self.settings.space):
            return None
        return validations_in_run(trainer)

    def _check_monitor(self, trainer: Trainer) -> None:
        monitor, logged = self.settings.monitor, sorted(trainer.callback_metrics)
        if monitor in logged or (trainer.sanity_checking and not any(
                name.split("/")[0] == monitor.split("/")[0] for name in logged)):
            return  # during the sanity check, judge only a monitor whose stage has logged something
        message = (f"--monitor {monitor} is never logged by the runs (they log: {', '.join(logged) or 'nothing'}); "
                   "pass one of those to --monitor")
        if trainer.is_global_zero:
            self.trial.set_user_attr(FATAL, message)
        raise ConfigError(message)


def validations_in_run(trainer: Trainer) -> int | None:
    """How many validations this run will have, or None when that is not known from epochs alone."""
    epochs, every = trainer.max_epochs or -1, trainer.check_val_every_n_epoch or 1
    if epochs <= 0 or trainer.val_check_interval != 1.0:
        return None
    return max(1, epochs // every)


def report_steps(reported: int, validations: int, total: int | None) -> list[int]:
    """The pruner steps a trial's latest validation is reported at. Steps are validations, or, when `total` is given
    (trials of different lengths), percent of the run: every percent since the last report gets the value, so any
    two trials have values at the same fraction of their runs to compare (Optuna compares at equal steps only)."""
    if total is None:
        return [validations]
    return list(range(reported + 1, min(100, math.ceil(100 * validations / total)) + 1))


def warmup_validations(trainer: Trainer, setting: int | None) -> int:
    """Validations never pruned: `setting`, or when unset the first quarter of this trial's validations (at least
    one): early epochs sit at chance level in every trial, so a median taken there prunes on noise."""
    if setting is not None:
        return setting
    total = validations_in_run(trainer)
    if total is None:
        return 1  # length unknown here (max_steps, several validations an epoch): spare the first one
    return max(1, math.ceil(0.25 * total))


def _die_with_runner() -> None:
    """Ask the kernel for SIGKILL when the runner dies (Linux), so no orphan trains on unseen. The runner's pid is
    taken out of the environment, so the processes this trial starts (DDP ranks) never compare against it."""
    parent = os.environ.pop(PARENT_ENV, None)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the runner died before prctl took effect
        os._exit(137)

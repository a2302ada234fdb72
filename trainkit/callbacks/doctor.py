"""The training doctor in every fit: preflight checks in the first seconds, a curve diagnosis when fit ends."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from trainkit.doctor.data_match import model_data_mismatches
from trainkit.doctor.preflight import (
    PreflightError,
    check_trainer_config,
    missing_monitors,
    monitored_metrics,
    overfit_one_batch,
)


class Doctor(Callback):
    """Preflight (monitored metrics logged, loss falls on one batch, precision/strategy/SLURM fit the machine) and
    the end-of-fit curve diagnosis written to the run folder as doctor.md and doctor.png."""

    def __init__(self, preflight: bool = True, overfit_steps: int = 8, diagnose: bool = True) -> None:
        """Args:
        preflight: run the preflight checks; a problem stops the run before it wastes time, with the fix.
        overfit_steps: optimizer steps on one batch in which the loss must fall (0 skips this check).
        diagnose: diagnose the logged curves when fit ends (`trainkit doctor RUN_DIR` does it on demand).
        """
        self.preflight = preflight
        self.overfit_steps = overfit_steps
        self.diagnose = diagnose
        self.collect = False
        """When True (`trainkit check`), problems are gathered in `problems` instead of stopping the run."""
        self.problems: list[str] = []
        self._monitors_checked = False

    @property
    def enabled(self) -> bool:
        """Always: the monitor check at the first validation runs whatever the flags say, since a typo would
        otherwise end in Lightning's MisconfigurationException after the first epoch."""
        return True

    def check_trainer_config(self, config: dict[str, Any]) -> None:
        """Called by the CLI before the Trainer exists, so a wrong strategy or precision never becomes a traceback."""
        if self.preflight:
            self._report(check_trainer_config(config))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._monitors_checked = False
        if self.preflight and trainer.ckpt_path is None:
            self._check_model_matches_data(trainer, pl_module)
        if not self.preflight or self.overfit_steps <= 0 or trainer.ckpt_path is not None:
            return  # a resumed run has shown it can learn
        if not isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy):
            return  # sharded weights cannot be stepped outside the strategy's own wrapper
        problems = overfit_one_batch(trainer, pl_module, self.overfit_steps)
        self._report(problems, trainer)

    def _check_model_matches_data(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Output width, label range and target shape on the first training batch; a mismatch stops the run (also
        under `trainkit check`: training on it would end in a raw error)."""
        # Private Lightning API (tests/test_lightning_private_api.py), as in overfit_one_batch: the train loader is
        # not built yet at fit start.
        batch = next(iter(trainer.fit_loop._data_source.dataloader()))
        batch = pl_module._apply_batch_transfer_handler(batch)
        problems = model_data_mismatches(pl_module, batch, trainer.datamodule)
        if problems:
            self.problems += [p for p in problems if p not in self.problems]
            raise PreflightError(self.problems if self.collect else problems)

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Validation metrics exist now, seconds into the run: judge the monitors that name them.
        if self.preflight:
            self._report(missing_monitors(monitored_metrics(trainer), trainer.callback_metrics, True), trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check_all_monitors(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.enable_validation:
            self._check_all_monitors(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.diagnose or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if logger is None:
            return
        logger.save()
        from trainkit.doctor.report import examine, table

        try:
            report = examine(logger.log_dir)
        except Exception as error:  # noqa: BLE001  a report must never turn a finished fit into a failed one
            print(f"trainkit doctor: could not diagnose {logger.log_dir} ({type(error).__name__}: {error}); "
                  f"try `trainkit doctor {logger.log_dir}`", flush=True)
            return
        print(table(report) + f"\n  report: {report.markdown}  plot: {report.plot}", flush=True)

    def _check_all_monitors(self, trainer: Trainer) -> None:
        # With the preflight off too: one look at the first validation's metrics, or Lightning fails after it.
        if not self._monitors_checked:
            self._monitors_checked = True
            self._report(missing_monitors(monitored_metrics(trainer), trainer.callback_metrics), trainer)

    def _report(self, problems: list[str], trainer: Trainer | None = None) -> None:
        problems = [p for p in problems if p not in self.problems]
        if self.collect:
            self.problems += problems
            return
        # Every process must agree, or one rank would stop while the others wait for it.
        stop = bool(problems)
        if trainer is not None and trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            raise PreflightError(problems or ["preflight failed on another process; see its log"])

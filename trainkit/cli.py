"""The `trainkit` command: a LightningCLI with trainkit's run layout, defaults and one-line errors.

No training logic and no command lives here: `trainkit.console` dispatches to this CLI or to a module of
`trainkit.commands`, and turns errors into one line.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Literal

from jsonargparse import Namespace, set_parsing_settings
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger

import trainkit.data  # noqa: F401  (registers the DataModules so `class_path: DigitsDataModule` works)
import trainkit.tasks  # noqa: F401  (registers the task modules for short class_path names)
from trainkit.callbacks import CLI_CALLBACKS, Throughput, attached
from trainkit.callbacks._dispatch import NoProfiler, skip_unused_hooks
from trainkit.callbacks.model_summary import ModelSummaryWithoutZeroFlops
from trainkit.callbacks.progress import silence_litlogger_tip
from trainkit.checks import check_checkpoint_matches, check_config_files, check_run_config
from trainkit.help_parser import TrainkitArgumentParser
from trainkit.known_warnings import silence_known_warnings
from trainkit.loggers import RunCSVLogger
from trainkit.reports.provenance import Provenance
from trainkit.reports.table import metrics_table, number
from trainkit.runs import (
    RunContext,
    check_inside_runs_dir,
    claim_run_dir,
    discard_unstarted,
    resolve_ckpt_path,
    run_dir_of_checkpoint,
)
from trainkit.tasks import TaskModule
from trainkit.trackers import check_trackers, log_config, with_run_loggers

HELP_FLAGS = ("-h", "--help", "--print_config")
DESCRIPTION = "trainkit: train deep networks from YAML experiments. Subcommands: fit, validate, test, predict."


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config into the run folder so that `trainkit fit --config <it>` reruns the experiment.

    A rerun or resume never fails on an existing `config.yaml`: an identical config is not written again, and a
    different one is written beside it as `config-1.yaml`, `config-2.yaml`, ...
    """

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.already_saved:
            return
        run_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask, or rank 0 waits forever
        if trainer.is_global_zero and run_dir is not None:
            config = self.config.clone()
            if "ckpt_path" in config:
                del config["ckpt_path"]  # the saved config reruns the experiment; resuming is a flag, not config
            text = self.parser.dump(config, skip_none=False)
            log_dir = Path(run_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
            existing = sorted(log_dir.glob("config*.yaml"))
            if not any(path.read_text() == text for path in existing):
                path = log_dir / "config.yaml"
                index = 0
                while path.exists():
                    index += 1
                    path = log_dir / f"config-{index}.yaml"
                path.write_text(text)
            log_config(trainer, text, log_dir)
        self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


class TrainkitCLI(LightningCLI):
    """LightningCLI with trainkit's run folders, checkpoint/early-stopping groups and end-of-fit summary."""

    def __init__(
        self, args: list[str] | dict[str, Any] | None = None, run: bool = True, description: str = DESCRIPTION
    ) -> None:
        silence_known_warnings()
        self.run_context: RunContext | None = None  # set when the Trainer's loggers claim the run folder
        self._claimed_dir: Path | None = None  # a folder this process created, removed again if the start fails
        # Dataclass field docstrings become --help text, but reading them means tokenizing the source of every
        # class in the parser (about 1 s on 2 cores): only worth it when help or a commented config is printed.
        # The top-level `trainkit --help` lists only the subcommands.
        given = sys.argv[1:] if args is None else args if isinstance(args, list) else []
        argv = [str(arg).split("=")[0] for arg in given]
        wants_docs = bool(argv) and not argv[0].startswith("-") and any(
            arg in HELP_FLAGS or arg.endswith(".help") for arg in argv
        )
        set_parsing_settings(docstring_parse_attribute_docstrings=wants_docs)
        # Lightning builds a parser for each of fit/validate/test/predict; a run needs only the one it names.
        self._only_subcommand = argv[0] if argv and argv[0] in LightningCLI.subcommands() else None
        self._argv = [str(arg) for arg in given]
        check_config_files(self._argv)
        try:
            self._build(args, run, description)
        except BaseException:
            discard_unstarted(self._claimed_dir)
            raise

    def _build(self, args: list[str] | dict[str, Any] | None, run: bool, description: str) -> None:
        super().__init__(
            model_class=TaskModule,
            subclass_mode_model=True,
            datamodule_class=LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=RunConfigSaver,
            parser_class=TrainkitArgumentParser,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False, "description": description, "allow_abbrev": False},
            args=args,
            run=run,
        )

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """Lightning's subcommands, or only the one the command line names (a quarter of the parser's build)."""
        every = LightningCLI.subcommands()
        only = getattr(self, "_only_subcommand", None)
        return {only: every[only]} if only else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add = parser.add_argument
        add("--experiment", type=str, default="default", help="Experiment name: its runs go to RUNS_DIR/EXPERIMENT/.")
        add("--runs_dir", type=str, default="runs", help="Root folder of all runs.")
        add("--run_name", type=str | None, default=None, help="Fixed run folder name instead of the next version_N.")
        add("--monitor", type=str, default="val/loss", help="Metric that picks the best checkpoint and early-stops.")
        add("--mode", type=Literal["min", "max"], default="min", help="Whether lower or higher is better.")
        add("--test_after_fit", type=bool, default=False, help="Test the best checkpoint when fit ends.")
        add("--overwrite", type=bool, default=False, help="Let a fresh fit replace the run already in --run_name.")
        for key, callback_class in CLI_CALLBACKS.items():
            parser.add_lightning_class_args(callback_class, key)
            params = inspect.signature(callback_class.__init__).parameters
            for name in ("monitor", "mode"):
                if name in params:
                    parser.link_arguments(name, f"{key}.{name}")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)  # its "args parameter" warning: silenced in known_warnings.py
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        _hand_runs_dir(config)
        if "ckpt_path" in config:
            config_files = [str(path) for path in (config.get("config") or []) if path is not None]
            config.ckpt_path = resolve_ckpt_path(
                config.ckpt_path, config.runs_dir, config.experiment, config_files, config.get("run_name")
            )
            check_checkpoint_matches(config, config.ckpt_path, self._argv)
        if "runs_dir" in config:
            check_inside_runs_dir(config.runs_dir, config.experiment, config.get("run_name"))
        check_run_config(config, self.config.get("subcommand"))
        check_trackers(config)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        # Private LightningCLI hook: the one place that holds the Trainer arguments and callbacks before the Trainer.
        _preflight(config, callbacks)
        callbacks = self._run_callbacks(config, callbacks)
        config["callbacks"] = _with_model_summary(config, _with_progress_bar(config))
        config["logger"] = self._loggers(config.get("logger"))
        silence_litlogger_tip()
        if config.get("profiler") is None:
            config["profiler"] = NoProfiler()
        trainer = super()._instantiate_trainer(config, callbacks)
        _prepare(trainer)
        return trainer

    def _run_callbacks(self, config: dict[str, Any], callbacks: list[Callback]) -> list[Callback]:
        """trainkit's callbacks that are switched on (EMA without a decay is left out, ...), plus the run's record;
        no checkpoint callback when checkpointing is off."""
        callbacks = attached(callbacks) + [Provenance(self._argv)]
        if config.get("enable_checkpointing") is False:
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return callbacks

    def _loggers(self, logger: Any) -> Any:
        """The run folder's loggers, unless logging is off; a tracker (MLflow, W&B) logs beside them, not instead."""
        if logger in (None, True):
            return self._run_loggers()
        if logger is False:
            return logger
        return with_run_loggers(self._run_loggers(), logger)

    def _run_loggers(self) -> list[Logger]:
        """CSV metrics always, TensorBoard too when installed, all in one run folder (claimed here)."""
        self.run_context = context = self._claim_run()
        save_dir = str(Path(context.runs_dir) / context.experiment)
        loggers: list[Logger] = [RunCSVLogger(save_dir=save_dir, name="", version=context.version)]
        if importlib.util.find_spec("tensorboard") is not None:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=save_dir, name="", version=context.version,
                                             default_hp_metric=False))
        return loggers

    def _claim_run(self) -> RunContext:
        """This run's folder: a fit's under runs_dir/experiment; an evaluation's inside the run it evaluates
        (runs/<exp>/version_N/test/version_K)."""
        cfg = self.config.get(str(self.subcommand), self.config)
        ckpt_path = cfg.get("ckpt_path")
        if self.subcommand in (None, "fit"):
            save_dir = Path(cfg.runs_dir) / cfg.experiment
            version, created = claim_run_dir(cfg.runs_dir, cfg.experiment, cfg.run_name,
                                             ckpt_path if self.subcommand else None, bool(cfg.get("overwrite")))
        else:
            evaluated = run_dir_of_checkpoint(ckpt_path) if ckpt_path else None
            save_dir = (evaluated if evaluated is not None else Path(cfg.runs_dir) / cfg.experiment) / self.subcommand
            version, created = claim_run_dir(save_dir.parent, save_dir.name, None, None)
        self._claimed_dir = save_dir / version if created else None
        return RunContext(save_dir.parent, save_dir.name, version)

    @property
    def run_dir(self) -> Path | None:
        """This run's folder, once the Trainer is built."""
        return self.run_context.run_dir if self.run_context is not None else None

    def _run_subcommand(self, subcommand: str) -> None:
        # Private LightningCLI hook: DDP ranks are started inside it, and must write into this run's folder.
        if self.run_context is None:
            return super()._run_subcommand(subcommand)
        with self.run_context.for_child_processes():
            super()._run_subcommand(subcommand)

    def fit(self, **kwargs: Any) -> None:
        """Lightning's fit; with --batch_size.oom_recovery, restarted at half the batch after running out of memory."""
        from trainkit.callbacks.batch_size import fit_with_oom_recovery

        fit_with_oom_recovery(self.trainer, **kwargs)

    def test(self, **kwargs: Any) -> None:
        """Lightning's test, its results printed as a plain table in 4 significant digits."""
        self._evaluate("test", **kwargs)

    def validate(self, **kwargs: Any) -> None:
        """Lightning's validate, its results printed as a plain table in 4 significant digits."""
        self._evaluate("validate", **kwargs)

    def _evaluate(self, stage: str, verbose: bool = True, **kwargs: Any) -> None:
        results = getattr(self.trainer, stage)(verbose=False, **kwargs)  # Lightning's table prints 16-digit floats
        if verbose and results and self.trainer.is_global_zero:
            print(metrics_table(stage, results), flush=True)

    def after_fit(self) -> None:
        stopped = [c.stop_reason for c in self.trainer.callbacks if getattr(c, "stop_reason", None)]
        if stopped:  # a callback ended the fit early on purpose (a pruned trial): no test pass for it
            if self.trainer.is_global_zero:
                print(f"\ntrainkit fit stopped: {', '.join(stopped)}\n  run folder       {self.run_dir}", flush=True)
            return
        cfg = self.config.fit
        test_metrics: dict[str, float] = {}
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        if cfg.test_after_fit and not self.trainer.interrupted:
            results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
            test_metrics = results[0] if results else {}
        if self.trainer.is_global_zero:
            speed = [line for c in self.trainer.callbacks if isinstance(c, Throughput) for line in c.summary()]
            print(_summary(self.run_dir, checkpoint, test_metrics, speed), flush=True)


class _ParseOnly(TrainkitCLI):
    """TrainkitCLI that parses and checks the flags and builds nothing."""

    def instantiate_classes(self) -> None:
        pass


def parse_only(fit_args: list[str]) -> Namespace:
    """`trainkit fit` flags parsed and checked as the fit would, building nothing: a command checks them now (before
    a SLURM queue or a search), and reads the run's experiment, runs_dir and monitor from the result."""
    return _ParseOnly(args=fit_args, run=False).config


def _hand_runs_dir(config: Any) -> None:
    """A model that takes `runs_dir` (DPO finds its SFT reference there) gets the command's --runs_dir."""
    model = config.get("model")
    class_path = model.get("class_path") if model is not None and hasattr(model, "get") else None
    if not class_path or "runs_dir" not in config:
        return
    module, _, name = class_path.rpartition(".")
    model_class = getattr(importlib.import_module(module), name, None)
    if model_class is not None and "runs_dir" in inspect.signature(model_class.__init__).parameters:
        model.init_args.runs_dir = str(config.runs_dir)


def _preflight(config: dict[str, Any], callbacks: list[Callback]) -> None:
    """Preflight hooks (e.g. Doctor) see the Trainer arguments before Lightning does."""
    for callback in callbacks:
        if hasattr(callback, "check_trainer_config"):
            callback.check_trainer_config(config)


def _with_progress_bar(config: dict[str, Any]) -> list[Callback]:
    """The user's callbacks, plus trainkit's progress display unless the bar is off or the user gave one."""
    user_callbacks = list(config.get("callbacks") or [])
    has_bar = any(isinstance(c, ProgressBar) for c in user_callbacks)
    if config.get("enable_progress_bar", True) is not False and not has_bar:
        user_callbacks.append(_progress_bar())
    return user_callbacks


def _with_model_summary(config: dict[str, Any], callbacks: list[Callback]) -> list[Callback]:
    """The callbacks plus trainkit's model summary (no "Total FLOPs: 0") unless the summary is off or given."""
    if config.get("enable_model_summary", True) is not False and not any(
            isinstance(c, ModelSummary) for c in callbacks):
        callbacks = [*callbacks, ModelSummaryWithoutZeroFlops()]
        config["enable_model_summary"] = False  # else Lightning says it skips its own summary for ours
    return callbacks


def _prepare(trainer: Trainer) -> None:
    """Work on the built Trainer: drop hooks no callback implements, then the checks that must run before any
    collective (a callback's prepare_trainer)."""
    skip_unused_hooks(trainer.callbacks)  # see trainkit/callbacks/_dispatch.py: ~2 µs per callback per hook
    for callback in trainer.callbacks:
        if hasattr(callback, "prepare_trainer"):
            callback.prepare_trainer(trainer)


def _progress_bar() -> ProgressBar:
    """One line per epoch where stdout is not a terminal; else trainkit's throttled rich bar (Lightning's tqdm bar
    without rich)."""
    from trainkit.callbacks.progress import EpochLines

    if not sys.stdout.isatty():
        return EpochLines()
    if importlib.util.find_spec("rich") is not None:
        from trainkit.callbacks.progress import ThrottledProgressBar

        return ThrottledProgressBar(leave=True)
    from lightning.pytorch.callbacks import TQDMProgressBar

    return TQDMProgressBar()


def _summary(run_dir: Path | None, checkpoint: Callback | None, test_metrics: dict[str, float],
             extra: list[str] | None = None) -> str:
    """The few lines a person wants when fit ends: where things are and how good the result is."""
    lines = ["", "trainkit fit finished"]
    if run_dir is not None:
        lines.append(f"  run folder       {run_dir}")
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path:
        score = checkpoint.best_model_score
        value = f" ({checkpoint.monitor}={float(score):.4f})" if score is not None else ""
        lines.append(f"  best checkpoint  {checkpoint.best_model_path}{value}")
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.last_model_path:
        lines.append(f"  last checkpoint  {checkpoint.last_model_path}")
    for name, value in sorted(test_metrics.items()):
        lines.append(f"  {name:<16} {number(value)}")
    lines += extra or []  # e.g. Throughput's samples/s, step time, data wait and peak memory
    return "\n".join(lines)

"""`trainkit tune --config X.yaml --search S.yaml [trainkit fit flags] --n_trials N`: hyperparameter search on Optuna.

Every trial is an ordinary `trainkit fit` run in runs/<experiment>/tune_<study>/trial_<n>/; the study lives in an
Optuna journal file beside them, so rerunning the command continues it, `--n_jobs J` runs J trials at once and
`--slurm` runs them as one SLURM array job whose tasks share the journal. See docs/tuning.md.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jsonargparse import ArgumentParser

from trainkit.errors import ConfigError

if TYPE_CHECKING:
    from trainkit.tune.study import StudySettings

USAGE = (
    "trainkit tune --config X.yaml --search S.yaml [trainkit fit flags] --n_trials N [--n_jobs J] [--study NAME] "
    "[--timeout SECONDS] [--sampler tpe|random|grid] [--pruner median|hyperband|none] [--seed K]\n"
    "       [--slurm [trainkit slurm flags] [--submit]]\n"
    "trainkit tune --show runs/<experiment>/tune_<study>"
)


@dataclass
class TuneOptions:
    """The search; every field is a `trainkit tune` flag. All other flags go to each trial's `trainkit fit`.

    Args:
        search: YAML search space keyed by dotted config keys, e.g.
            `model.init_args.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}`.
        n_trials: Trials in the study in total; a rerun continues until there are this many.
        n_jobs: Trials run at once on this machine (with --slurm: array tasks, each running one at a time).
        study: Study name (folder runs/<experiment>/tune_<study>); the search file's name when unset.
        timeout: Start no new trial after this many seconds (running trials finish).
        sampler: tpe (Bayesian, after startup_trials random ones), random, or grid (every combination; floats
            need a step).
        pruner: median (stop a trial whose value at a validation is worse than the median of finished trials
            there), hyperband, or none.
        seed: Seed of the sampler (trial n draws with seed * 10000 + n, so parallel runners never repeat a
            draw); the trials themselves keep the config's seed_everything.
        startup_trials: Trials sampled at random, and finished unpruned, before TPE and the median pruner act.
        warmup_validations: Validations of each trial that are never pruned.
        baseline: Make trial 0 the config's own values (when the space holds them), so the table shows what the
            search gained over the untuned config.
        show: Print the table of the study in this folder (finished or running) and exit.
        slurm: Render, and with --submit submit, one SLURM array job of n_jobs tasks instead of running here.
        submit: With --slurm, submit the rendered script with sbatch.
    """

    search: str | None = None
    n_trials: int = 20
    n_jobs: int = 1
    study: str | None = None
    timeout: float | None = None
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    seed: int = 0
    startup_trials: int = 5
    warmup_validations: int = 0
    baseline: bool = True
    show: str | None = None
    slurm: bool = False
    submit: bool = False

    def __post_init__(self) -> None:
        for name in ("n_trials", "n_jobs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} {getattr(self, name)} must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout {self.timeout:g} must be > 0 seconds")
        if self.startup_trials < 0 or self.warmup_validations < 0:
            raise ConfigError("--startup_trials and --warmup_validations must be >= 0")
        if self.show is None and self.search is None:
            raise ConfigError("--search S.yaml is required: the search space (see configs/tune/digits.yaml)")


_SWITCHES = ("slurm", "submit")


def main(argv: list[str]) -> None:
    """Run `trainkit tune`."""
    tune_args, rest = _split(argv)
    if "-h" in rest or "--help" in rest:
        print(USAGE + "\n\nSearch flags (all other flags go to each trial's `trainkit fit`; with --slurm, the "
              "`trainkit slurm` job flags too):")
        _parser().print_help()
        return
    options = TuneOptions(**vars(_parser().parse_args(tune_args)))
    if options.show is not None:
        _show(Path(options.show))
        return
    job_args: list[str] = []
    if options.slurm:
        from trainkit.hpc.sbatch import split_job_flags

        job_args, rest, _ = split_job_flags(rest)
    folder, settings = _prepare(options, rest)
    if options.slurm:
        _render_array(options, settings, folder, argv, job_args)
        return
    from trainkit.tune.results import report
    from trainkit.tune.runner import Runner

    print(f"trainkit tune: study '{settings.name}' in {folder}, {settings.n_trials} trials, {options.n_jobs} at once",
          flush=True)
    try:
        Runner(folder, settings, n_jobs=options.n_jobs, timeout=options.timeout).run()
    finally:
        print(report(folder, settings), flush=True)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="trainkit tune", exit_on_error=False)
    parser.add_class_arguments(TuneOptions, as_group=False)
    return parser


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The search's flags (--n_trials 6, --slurm) apart from those of `trainkit fit` and `trainkit slurm`."""
    names = {field.name for field in dataclasses.fields(TuneOptions)}
    ours: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        name = flag.removeprefix("--")
        if flag.startswith("--") and name in _SWITCHES and not has_value:
            ours += [flag, "true"]
        elif flag.startswith("--") and name in names:
            ours += [flag, value if has_value else next(args, "")]
        else:
            rest.append(arg)
    return ours, rest


def _prepare(options: TuneOptions, fit_args: list[str]) -> tuple[Path, StudySettings]:
    """Check the search against the config and create (or continue) the study; nothing trains yet."""
    from trainkit.cli import parse_only
    from trainkit.tune import study as studies
    from trainkit.tune.space import SearchSpace

    space = SearchSpace.from_file(options.search)  # type: ignore[arg-type]
    ckpt = [fit_args[i + 1] if a == "--ckpt_path" and i + 1 < len(fit_args) else a.partition("=")[2]
            for i, a in enumerate(fit_args) if a == "--ckpt_path" or a.startswith("--ckpt_path=")]
    if any(value != "auto" for value in ckpt):
        raise ConfigError("--ckpt_path: each trial resumes only from its own folder (trainkit tune passes "
                          "--ckpt_path auto); drop it, and load pretrained weights through the model's options")
    fit_args = [a for i, a in enumerate(fit_args) if not _is_ckpt_flag(fit_args, i)]
    config = parse_only(fit_args)
    try:
        space.check_keys(config)
    except ConfigError as error:
        raise ConfigError(f"search file {options.search}: {error}") from error
    if options.sampler == "grid":
        space.grid()
    name = options.study or Path(options.search).stem  # type: ignore[arg-type]
    settings = studies.StudySettings(
        name=name, space=space.to_dict(), monitor=config.monitor, mode=config.mode, n_trials=options.n_trials,
        sampler=options.sampler, pruner=options.pruner, seed=options.seed, startup_trials=options.startup_trials,
        warmup_validations=options.warmup_validations, fit_args=fit_args, experiment=config.experiment,
        runs_dir=str(config.runs_dir),
    )
    folder = studies.study_dir(config.runs_dir, config.experiment, name)
    studies.write_settings(folder, settings)
    baseline = space.values_in(config) if options.baseline and options.sampler != "grid" else None
    if baseline is not None:
        studies.enqueue_baseline(folder, settings, baseline)
    return folder, settings


def _is_ckpt_flag(args: list[str], index: int) -> bool:
    """Whether args[index] is `--ckpt_path`, its value, or `--ckpt_path=...` (tune adds its own)."""
    arg = args[index]
    return arg == "--ckpt_path" or arg.startswith("--ckpt_path=") or (index > 0 and args[index - 1] == "--ckpt_path")


def _show(folder: Path) -> None:
    from trainkit.tune import study as studies
    from trainkit.tune.results import report

    settings = studies.read_settings(folder)
    print(report(folder, settings, write=False))


def _render_array(options: TuneOptions, settings: StudySettings, folder: Path, argv: list[str],
                  job_args: list[str]) -> None:
    """One array job of n_jobs tasks; each task is a runner (`trainkit tune ... --n_jobs 1`) on the shared journal."""
    from trainkit.hpc.sbatch import SlurmJob, job_parser, render_sbatch, submit

    job = SlurmJob(**vars(job_parser().parse_args(job_args)))
    if job.nodes != 1 or job.devices != 1:
        raise ConfigError("--slurm: each array task runs one single-device trial at a time; drop --nodes, "
                          "--tasks_per_node and set --gpus_per_node 0 or 1 (more tasks: raise --n_jobs)")
    job_names = {f.name for f in dataclasses.fields(SlurmJob)}
    worker_args = _without(argv, job_names | {"slurm", "submit", "n_jobs", "ckpt_path"})
    worker_args += ["--n_jobs", "1", "--study", settings.name]
    script = render_sbatch(job, worker_args, settings.experiment, folder, Path.cwd(), command="tune",
                           array=options.n_jobs)
    path = folder / f"sbatch_{datetime.now().strftime('%Y%m%d-%H%M%S')}.sh"
    path.write_text(script)
    print(script)
    print(f"trainkit: sbatch script written to {path}")
    if options.submit:
        job_id = submit(path)
        print(f"trainkit: submitted array job {job_id} ({options.n_jobs} tasks) for study '{settings.name}'; "
              f"its logs are {folder}/slurm_*.log; watch it with `trainkit tune --show {folder}`")


def _without(argv: list[str], names: set[str]) -> list[str]:
    """argv without the flags in `names` and their values."""
    kept: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, has_value, _ = arg.partition("=")
        name = flag.removeprefix("--").replace("-", "_")
        if flag.startswith("--") and name in names:
            if not has_value and name not in _SWITCHES:
                next(args, None)
        else:
            kept.append(arg)
    return kept


if __name__ == "__main__":
    main(sys.argv[1:])

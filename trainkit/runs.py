"""Where a run's files go (`runs/<experiment>/version_N/`) and how `best`/`last` checkpoint names are resolved."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trainkit.checkpoints import refusal
from trainkit.errors import ConfigError
from trainkit.hpc.atomic import checkpoint_problem
from trainkit.hpc.slurm_env import slurm_run_name

CHECKPOINT_DIR = "checkpoints"
CKPT_ALIASES = ("best", "last", "auto")
_VERSION_ENV = "TRAINKIT_RUN_VERSION"  # the one variable a run hands its DDP ranks, read and written only here


@dataclass(frozen=True)
class RunContext:
    """Where a run's files go (`runs_dir/experiment/version`), passed to whoever needs it instead of a global."""

    runs_dir: Path
    experiment: str
    version: str

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.runs_dir) / self.experiment / self.version

    @contextlib.contextmanager
    def for_child_processes(self) -> Iterator[None]:
        """Hand the version to the processes started inside the block (Lightning's DDP launcher copies os.environ
        into the ranks it starts, so every rank writes into this folder); the environment is restored after."""
        before = os.environ.get(_VERSION_ENV)
        os.environ[_VERSION_ENV] = self.version
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(_VERSION_ENV, None)
            else:
                os.environ[_VERSION_ENV] = before


def inherited_version() -> str | None:
    """The run folder a launching rank handed this DDP rank (see `RunContext.for_child_processes`), else None."""
    if int(os.environ.get("LOCAL_RANK", 0)) > 0 or int(os.environ.get("NODE_RANK", 0)) > 0:
        return os.environ.get(_VERSION_ENV) or None
    return None


def run_dirs(runs_dir: str | Path, experiment: str) -> list[Path]:
    """The experiment's `version_N` folders, oldest first."""
    root = Path(runs_dir) / experiment
    found = [p for p in root.glob("version_*") if p.is_dir() and p.name.removeprefix("version_").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("version_")))


def next_version(runs_dir: str | Path, experiment: str) -> str:
    """Name of the next free `version_N` folder."""
    existing = run_dirs(runs_dir, experiment)
    return f"version_{int(existing[-1].name.removeprefix('version_')) + 1 if existing else 0}"


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path | None:
    """The run folder a checkpoint was written into, or None for a checkpoint kept elsewhere."""
    path = Path(ckpt_path).resolve()
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else None


def claim_run_dir(
    runs_dir: str | Path, experiment: str, run_name: str | None, ckpt_path: str | None, overwrite: bool = False
) -> tuple[str, bool]:
    """Folder name for a fit, and whether this call created the folder (a fresh `version_N` or name).

    The folder is the run a resumed checkpoint came from, an explicit name, the SLURM job's folder (`slurm_<job id>`,
    the same across requeues), the one the launching rank handed a DDP rank, or the next version.

    A fresh `version_N` is claimed with a `mkdir` that fails when another fit made it first (then N+1 is tried), so
    fits started together never share a folder. A fresh fit into a named folder that already holds a run is refused
    unless `overwrite`, which empties it first.
    """
    check_inside_runs_dir(runs_dir, experiment, run_name)
    if inherited := inherited_version():
        return inherited, False
    run_dir = run_dir_of_checkpoint(ckpt_path) if ckpt_path else None
    created = False
    if run_dir is not None and run_dir.parent.resolve() == (Path(runs_dir) / experiment).resolve():
        version = run_dir.name
    elif run_name or slurm_run_name():
        version = str(run_name or slurm_run_name())
        folder = Path(runs_dir) / experiment / version
        if run_name and not ckpt_path and holds_run(folder):
            if not overwrite:
                raise ConfigError(
                    f"run folder {folder} already holds a run; resume it with --ckpt_path last, pick another "
                    "--run_name, or pass --overwrite true to replace it"
                )
            shutil.rmtree(folder)
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
    else:
        version, created = _claim_next_version(runs_dir, experiment), True
    return version, created


def _claim_next_version(runs_dir: str | Path, experiment: str) -> str:
    root = Path(runs_dir) / experiment
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(runs_dir, experiment)
    while True:
        try:
            (root / version).mkdir()  # atomic: exactly one of several simultaneous fits creates it
            return version
        except FileExistsError:
            version = f"version_{int(version.removeprefix('version_')) + 1}"


def holds_run(folder: str | Path) -> bool:
    """Whether a run folder holds finished work: a checkpoint, logged metrics beyond the header row, or the record of
    a run that got as far as its Trainer stage and failed for a reason other than bad input (its provenance.json says
    how it failed, for `trainkit runs`)."""
    folder = Path(folder)
    if any((folder / CHECKPOINT_DIR).glob("*.ckpt")):
        return True
    with contextlib.suppress(OSError, ValueError, AttributeError):
        record = json.loads((folder / "provenance.json").read_text())
        if record.get("stage") and not record.get("bad_input"):
            return True
    metrics = folder / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().splitlines()) > 1


def discard_unstarted(folder: str | Path | None) -> None:
    """Remove a run folder this process claimed when the run failed before it held anything worth keeping."""
    if folder is not None and Path(folder).is_dir() and not holds_run(folder):
        shutil.rmtree(folder, ignore_errors=True)


def check_inside_runs_dir(runs_dir: str | Path, experiment: str, run_name: str | None) -> None:
    """Refuse an experiment or run name that would put the run folder outside `runs_dir` (`..`, absolute paths)."""
    for flag, value in (("--experiment", experiment), ("--run_name", run_name)):
        if value is None:
            continue
        if value in ("", ".") or Path(value).is_absolute() or ".." in Path(value).parts:
            raise ConfigError(
                f"{flag} {value!r} would put the run outside --runs_dir {runs_dir}; use a plain name such as "
                f"'my_run' (no '..', no absolute path), and set --runs_dir to choose where runs go"
            )


def resolve_ckpt_path(
    value: str | None,
    runs_dir: str | Path,
    experiment: str,
    config_files: Iterable[str | Path] = (),
    run_name: str | None = None,
) -> str | None:
    """Turn `best`, `last` or `auto` into a checkpoint file; check that an explicit path exists and is intact.

    A named run (`--run_name`, or the SLURM job's folder inside a batch job) only resumes from itself. Otherwise a
    config file saved inside a run folder points at that run, else the newest run of the experiment holding the
    requested checkpoint is used. `auto` is `last` when there is one, else None (a fresh start). A broken `last`
    is reported in one line and the newest intact checkpoint of the same run is used instead.
    """
    if value is None or value == "":
        return None
    if value not in CKPT_ALIASES:
        if not Path(value).exists():
            raise ConfigError(f"checkpoint '{value}' does not exist; pass an existing .ckpt file, or best/last/auto")
        if problem := checkpoint_problem(value):
            raise ConfigError(f"checkpoint '{value}' cannot be loaded: {problem}; pass an intact checkpoint instead")
        if problem := refusal(value):
            raise ConfigError(f"checkpoint '{value}' is refused: {problem}")
        return value
    name = "last" if value == "auto" else value
    job_run = None if run_name else slurm_run_name()
    config_dirs = [Path(c).resolve().parent for c in config_files]
    candidates = [d for d in config_dirs if (d / CHECKPOINT_DIR).is_dir()]
    candidates = candidates or list(reversed(run_dirs(runs_dir, experiment)))
    if run_name or (job_run and value == "auto"):
        # A named run, or a SLURM job's `auto`, resumes only itself: a new job never continues someone else's run.
        candidates = [Path(runs_dir) / experiment / str(run_name or job_run)]
    elif job_run:
        candidates.insert(0, Path(runs_dir) / experiment / job_run)  # e.g. `trainkit test --ckpt_path best` in a job
    for run_dir in candidates:
        ckpt = run_dir / CHECKPOINT_DIR / f"{name}.ckpt"
        if ckpt.exists():
            return _intact_or_previous(ckpt, name)
    if value == "auto":
        return None
    where = Path(runs_dir) / experiment / (run_name or "version_*")
    raise ConfigError(
        f"no '{name}' checkpoint in {where}/{CHECKPOINT_DIR}/; run `trainkit fit` with this experiment "
        "first, or pass --ckpt_path PATH"
    )


def _intact_or_previous(ckpt: Path, name: str) -> str:
    """`ckpt` when it loads; for `last`, else the newest intact checkpoint beside it (reported in one line)."""
    problem = checkpoint_problem(ckpt)
    if problem is None:
        if refused := refusal(ckpt):
            raise ConfigError(f"checkpoint '{ckpt}' is refused: {refused}")
        return str(ckpt)
    if name == "last":
        others = [p for p in ckpt.parent.iterdir() if p != ckpt and p.suffix == ".ckpt"]
        for other in sorted(others, key=lambda p: p.stat().st_mtime, reverse=True):
            if checkpoint_problem(other) is None:
                if int(os.environ.get("LOCAL_RANK", 0)) == 0:
                    print(f"trainkit: {ckpt} is unusable ({problem}); resuming from {other}, the newest intact "
                          "checkpoint of this run", file=sys.stderr, flush=True)
                return str(other)
    raise ConfigError(f"checkpoint {ckpt} cannot be loaded: {problem}; and no intact checkpoint is left beside it; "
                      "pass --ckpt_path PATH to another checkpoint, or start afresh without --ckpt_path")

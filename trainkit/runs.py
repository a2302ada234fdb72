"""Where a run's files go (`runs/<experiment>/version_N/`) and how `best`/`last` checkpoint names are resolved."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from trainkit.errors import ConfigError
from trainkit.hpc.atomic import checkpoint_problem
from trainkit.hpc.slurm_env import slurm_run_name

CHECKPOINT_DIR = "checkpoints"
CKPT_ALIASES = ("best", "last", "auto")
_VERSION_ENV = "TRAINKIT_RUN_VERSION"  # handed to DDP worker processes so every rank agrees on the folder
RUNS_DIR_ENV = "TRAINKIT_RUNS_DIR"  # the running command's --runs_dir, for models that find other runs' checkpoints


def current_runs_dir() -> Path:
    """The --runs_dir of the running trainkit command (recorded when its arguments are parsed), else `runs`."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


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


def plan_version(runs_dir: str | Path, experiment: str, run_name: str | None, ckpt_path: str | None) -> str:
    """Folder name for a fit: the run a resumed checkpoint came from, an explicit name, the SLURM job's folder
    (`slurm_<job id>`, the same across requeues), or the next version."""
    inherited = os.environ.get(_VERSION_ENV)
    if inherited and (int(os.environ.get("LOCAL_RANK", 0)) > 0 or int(os.environ.get("NODE_RANK", 0)) > 0):
        return inherited
    run_dir = run_dir_of_checkpoint(ckpt_path) if ckpt_path else None
    if run_dir is not None and run_dir.parent.resolve() == (Path(runs_dir) / experiment).resolve():
        version = run_dir.name
    else:
        version = run_name or slurm_run_name() or next_version(runs_dir, experiment)
    os.environ[_VERSION_ENV] = version
    return version


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

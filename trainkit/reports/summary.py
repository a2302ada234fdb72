"""One run read back from its folder: state, length, best monitored value, test metrics, timing and provenance.
Shared by `trainkit runs` and `trainkit compare`; reads files only, never a checkpoint."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trainkit.doctor.curves import METRICS_FILE, Series, read_metrics
from trainkit.errors import ConfigError
from trainkit.reports.progress import read_eta
from trainkit.reports.provenance import PROVENANCE_FILE, read_provenance, run_state
from trainkit.saved_config import newest_config

RUN_FILES = (PROVENANCE_FILE, METRICS_FILE, "config.yaml")
"""A folder holding any of these is a run folder."""
EVALUATIONS = ("test", "validate", "predict")
"""Sub-folders of a run holding its later evaluations, not runs of their own."""


@dataclass
class RunSummary:
    """What `trainkit runs` shows of one run."""

    run_dir: Path
    state: str
    monitor: str
    mode: str
    best: float | None = None
    epochs: int | None = None
    steps: int | None = None
    test: dict[str, float] = field(default_factory=dict)
    started: datetime | None = None
    duration_s: float | None = None
    eta_s: float | None = None
    """Seconds a running run has left at its pace so far (its progress.json); None for the others."""
    provenance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Series] = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        """The experiment folder's name."""
        return self.run_dir.parent.name


def is_run(path: Path) -> bool:
    """Whether `path` is a run folder."""
    return path.is_dir() and path.name not in EVALUATIONS and any((path / name).is_file() for name in RUN_FILES)


def find_runs(target: str | Path | None = None, runs_dir: str | Path = "runs") -> list[Path]:
    """Run folders named by `target`: a run folder, an experiment folder, a runs folder, or an experiment name."""
    path = Path(target if target is not None else runs_dir)
    if not path.exists() and target is not None and (Path(runs_dir) / str(target)).is_dir():
        path = Path(runs_dir) / str(target)
    if not path.is_dir():
        raise ConfigError(f"'{path}' is neither a folder nor an experiment in {runs_dir}/; pass a runs folder, an "
                          "experiment folder (runs/<experiment>) or a run folder (runs/<experiment>/version_N)")
    if is_run(path):
        return [path]
    runs = [child for child in sorted(path.iterdir(), key=_natural) if is_run(child)]
    if not runs:
        runs = [run for child in sorted(path.iterdir(), key=_natural) if child.is_dir()
                for run in sorted(child.iterdir(), key=_natural) if is_run(run)]
    if not runs:
        raise ConfigError(f"no runs in '{path}'; run `trainkit fit` first, or pass the folder that holds them")
    return runs


def summarize(run_dir: str | Path) -> RunSummary:
    """Read one run folder."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    record = read_provenance(run_dir)
    metrics = read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    summary = RunSummary(run_dir, run_state(record) if record else "unknown", str(config.get("monitor") or "val/loss"),
                         str(config.get("mode") or "min"), provenance=record, config=config, metrics=metrics)
    monitored = [v for v in metrics[summary.monitor].values if math.isfinite(v)] if summary.monitor in metrics else []
    if monitored:
        summary.best = max(monitored) if summary.mode == "max" else min(monitored)
    summary.test = {key: float(series.values[-1]) for key, series in metrics.items()
                    if key.startswith("test/") and len(series)}
    summary.epochs, summary.steps = _length(record, metrics)
    summary.started, summary.duration_s = _timing(record, run_dir, summary.state)
    if summary.state == "running":
        summary.eta_s = read_eta(run_dir)
    return summary


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's saved config (the newest `config-N.yaml` when a resume changed it), or {}."""
    import yaml

    saved = newest_config(run_dir)
    if saved is None:
        return {}
    try:
        loaded = yaml.safe_load(saved.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _length(record: dict[str, Any], metrics: dict[str, Series]) -> tuple[int | None, int | None]:
    """(epochs, steps): exact from a finished run's provenance, else the last logged ones."""
    if isinstance(record.get("epochs"), int) and isinstance(record.get("steps"), int):
        return record["epochs"], record["steps"]
    logged = [s for key, s in metrics.items() if key.startswith(("train/", "val/")) and len(s)]
    if not logged:
        return None, None
    epochs = max(int(s.epochs[-1]) for s in logged if math.isfinite(s.epochs[-1])) + 1
    steps = max(int(s.steps[-1]) for s in logged if math.isfinite(s.steps[-1])) + 1
    return epochs, steps


def _timing(record: dict[str, Any], run_dir: Path, state: str) -> tuple[datetime | None, float | None]:
    started, ended = _time(record.get("first_started") or record.get("started")), _time(record.get("ended"))
    if started is None:
        return None, None
    if ended is None and state == "running":
        return started, time.time() - started.timestamp()
    if ended is None:  # killed: it lasted until its last write
        written = [p.stat().st_mtime for p in (run_dir / METRICS_FILE, run_dir / PROVENANCE_FILE) if p.is_file()]
        return started, max(written) - started.timestamp() if written else None
    return started, (ended - started).total_seconds()


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _natural(path: Path) -> list[Any]:
    """Sort key putting version_2 before version_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

"""A run's logged curves, read back from its `metrics.csv` (and `config.yaml` for the monitor and the LR)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.errors import ConfigError

METRICS_FILE = "metrics.csv"
NONFINITE_KEY = "train/nonfinite"  # written by NonFiniteGuard at every step it caught


@dataclass
class Series:
    """One logged metric: the steps it was logged at, its values and the epoch of each value."""

    name: str
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.values)

    def finite(self) -> Series:
        """The same series without its NaN/Inf points."""
        keep = np.isfinite(self.values)
        return Series(self.name, self.steps[keep], self.values[keep], self.epochs[keep])


@dataclass
class Curves:
    """Everything the diagnosis reads from one run."""

    train: Series
    """Per-step training loss (one value per logging step)."""
    val: Series
    """Validation loss, one value per validation run."""
    monitor: Series
    """The run's monitored metric (`--monitor`)."""
    monitor_mode: str
    lr: Series
    grad_norm: Series
    nonfinite_steps: list[int]
    config: dict[str, Any]
    """The run's saved config.yaml (empty when absent)."""
    data_wait: Series = field(default_factory=lambda: Series("train/data_wait_frac"))
    """Fraction of step time the loop waited for the next batch (the Throughput callback), per logging window."""
    step_time: Series = field(default_factory=lambda: Series("train/step_time"))
    """Seconds per training step (the Throughput callback), per logging window."""
    syncs: Series = field(default_factory=lambda: Series("train/syncs_per_step"))
    """Host-device synchronisations per step on steps that are not logged (CUDA runs only)."""
    layers: dict[str, Series] = field(default_factory=dict)
    """Layer health (`--layer_health.every_n_steps`): `layers/<block>/<stat>` -> its series."""


def is_run_dir(path: str | Path) -> bool:
    """Whether `path` holds a run's metrics (a CSV logger's folder)."""
    return (Path(path) / METRICS_FILE).is_file()


def resolve_run_dir(path: str | Path) -> Path:
    """A run folder as given, or the newest run in an experiment folder; a clear error for anything else."""
    path = Path(path)
    if is_run_dir(path):
        return path
    runs = sorted(
        (p for p in path.glob("version_*") if is_run_dir(p) and p.name.removeprefix("version_").isdigit()),
        key=lambda p: int(p.name.removeprefix("version_")),
    ) if path.is_dir() else []
    if runs:
        return runs[-1]
    what = "does not exist" if not path.exists() else f"is not a run folder (no {METRICS_FILE} in it)"
    raise ConfigError(f"'{path}' {what}; pass a run folder such as runs/<experiment>/version_N")


def read_metrics(run_dir: str | Path) -> dict[str, Series]:
    """Every column of metrics.csv as a Series (rows where the column is empty are left out)."""
    columns: dict[str, tuple[list[float], list[float], list[float]]] = {}
    with (Path(run_dir) / METRICS_FILE).open(newline="") as file:
        for row in csv.DictReader(file):
            step, epoch = _number(row.get("step")), _number(row.get("epoch"))
            for key, text in row.items():
                if key in ("step", "epoch") or key is None or text in (None, ""):
                    continue
                steps, values, epochs = columns.setdefault(key, ([], [], []))
                steps.append(step)
                values.append(_number(text))
                epochs.append(epoch)
    series = {}
    for key, (steps, values, epochs) in columns.items():
        order = np.argsort(np.asarray(steps), kind="stable")
        series[key] = Series(
            key, np.asarray(steps)[order], np.asarray(values)[order], np.asarray(epochs)[order]
        )
    return series


def load_curves(run_dir: str | Path) -> Curves:
    """Read a run's curves; the monitored metric and its mode come from the run's config.yaml."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    config = _read_config(run_dir)
    monitor = str(config.get("monitor") or "val/loss")
    mode = str(config.get("mode") or "min")

    def get(*names: str) -> Series:
        for name in names:
            if name in metrics:
                return metrics[name]
        return Series(names[0])

    nonfinite = get(NONFINITE_KEY)
    return Curves(
        train=get("train/loss_step", "train/loss"),
        val=get("val/loss", "val/loss_epoch"),
        monitor=get(monitor),
        monitor_mode=mode,
        lr=get("train/lr"),
        grad_norm=get("train/grad_norm"),
        nonfinite_steps=sorted({int(s) for s, v in zip(nonfinite.steps, nonfinite.values, strict=True) if v}),
        config=config,
        data_wait=get("train/data_wait_frac"),
        step_time=get("train/step_time"),
        syncs=get("train/syncs_per_step"),
        layers={key: series for key, series in metrics.items() if key.startswith("layers/")},
    )


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}

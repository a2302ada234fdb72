"""`--json` output of `runs`, `compare`, `doctor` and `tune --show`: plain JSON for scripts and notebooks."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from trainkit.reports.summary import RunSummary


def to_json(value: Any) -> str:
    """`value` as indented JSON: paths and times as strings, NaN and infinities as null (JSON has neither)."""
    return json.dumps(_plain(value), indent=2)


def run_record(summary: RunSummary) -> dict[str, Any]:
    """One run as `trainkit runs --json` lists it; the curves stay in the run's metrics.csv."""
    return {"experiment": summary.experiment, "run": summary.run_dir.name, "run_dir": summary.run_dir,
            "state": summary.state, "monitor": summary.monitor, "mode": summary.mode, "best": summary.best,
            "epochs": summary.epochs, "steps": summary.steps, "test": summary.test, "started": summary.started,
            "duration_s": summary.duration_s, "provenance": summary.provenance}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path | datetime):
        return str(value) if isinstance(value, Path) else value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _plain(value.item())
    return value

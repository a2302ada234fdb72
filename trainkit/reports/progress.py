"""A running fit's progress (`progress.json`: steps done and in all, seconds per step), written on logging steps so
`trainkit runs` can say how long a running run has left, and the remaining-time estimate itself."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"


def remaining_seconds(steps_done: int, steps_total: float, elapsed: float) -> float | None:
    """Time left at the pace so far (validation included in it); None before the first step or without an end."""
    if steps_done <= 0 or not math.isfinite(steps_total) or steps_total <= 0:
        return None
    return max(0.0, elapsed / steps_done * (steps_total - steps_done))


def write_progress(run_dir: str | Path, steps_done: int, steps_total: float, elapsed: float) -> None:
    """Write progress.json atomically (a reader never sees half a file); a failed write is skipped, not fatal."""
    path = Path(run_dir) / PROGRESS_FILE
    record = {"step": steps_done, "total_steps": steps_total if math.isfinite(steps_total) else None,
              "seconds_per_step": elapsed / steps_done if steps_done else None, "written": time.time()}
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps(record) + "\n")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)


def read_eta(run_dir: str | Path, now: float | None = None) -> float | None:
    """Seconds a running run has left, from its progress.json and the time since it was written; None without one."""
    try:
        record: dict[str, Any] = json.loads((Path(run_dir) / PROGRESS_FILE).read_text())
        step, total, pace = int(record["step"]), record["total_steps"], record["seconds_per_step"]
        written = float(record["written"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if total is None or pace is None:
        return None
    since = (time.time() if now is None else now) - written
    return max(0.0, (float(total) - step) * float(pace) - since)


class FitClock:
    """When and at which step this fit (or resumed attempt) started, and the steps it will take in all."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_step = 0
        self.total_steps = math.inf

    def start(self, trainer: Any) -> None:
        """Start timing a fit; read once at the start of training."""
        self.started, self.first_step = time.monotonic(), trainer.global_step
        try:
            self.total_steps = float(trainer.estimated_stepping_batches)
        except (RuntimeError, ValueError, TypeError):  # a loader without a length and no max_steps: no end known
            self.total_steps = math.inf

    @property
    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.monotonic() - self.started

    def remaining(self, trainer: Any) -> float | None:
        """Seconds left at this fit's pace so far; None before its first step or without a known end."""
        return remaining_seconds(trainer.global_step - self.first_step, self.total_steps - self.first_step,
                                 self.elapsed)

    def write(self, trainer: Any, run_dir: str | Path) -> None:
        """Write this fit's progress.json into its run folder."""
        write_progress(run_dir, trainer.global_step - self.first_step, self.total_steps - self.first_step,
                       self.elapsed)

"""Reading a run's metrics.csv in tests."""

from __future__ import annotations

import csv
from pathlib import Path


def last_values(path: Path) -> dict[str, str]:
    """The last value of every column of a metrics.csv (steps and epochs log on different rows)."""
    merged: dict[str, str] = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            merged.update({key: value for key, value in row.items() if value})
    return merged

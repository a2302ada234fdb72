"""Reading a run's metrics.csv in tests (steps and epochs log on different rows, so most columns are sparse)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a metrics.csv, empty cells as ''."""
    with path.open() as file:
        return list(csv.DictReader(file))


def last_values(path: Path) -> dict[str, str]:
    """The last value of every column of a metrics.csv."""
    merged: dict[str, str] = {}
    for row in read_rows(path):
        merged.update({key: value for key, value in row.items() if value})
    return merged

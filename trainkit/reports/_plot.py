"""matplotlib on the Agg backend (offline, no display), small figures, and CSV tables: shared by the report writers."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DPI = 100  # with figures of a few inches, PNGs of tens of kB


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use so `trainkit --help` never waits for it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Write `fig` as a PNG and free it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A small CSV table; floats with 6 significant digits."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in rows:
            writer.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])
    return path


def displayable(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) normalised images to (N, H, W) or (N, H, W, 3) in [0, 1], each stretched to its own range."""
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    images = (images - low) / np.maximum(high - low, 1e-8)
    if images.shape[1] == 1:
        return images[:, 0]
    return np.moveaxis(images[:, :3], 1, -1)


def label_names(task: Any, count: int) -> list[str]:
    """Class (or target) names from the task or its data, else the indices."""
    datamodule = getattr(task.trainer, "datamodule", None)
    for source in (task, datamodule, getattr(datamodule, "data", None)):
        names = getattr(source, "class_names", None)
        if names is not None and len(names) == count:
            return [str(name) for name in names]
    return [str(index) for index in range(count)]


def grid(count: int, columns: int = 4) -> tuple[int, int]:
    """(rows, columns) of a grid holding `count` panels."""
    columns = max(1, min(columns, count))
    return -(-count // columns), columns

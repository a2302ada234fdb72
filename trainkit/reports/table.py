"""Plain aligned text tables: they read the same in a terminal, a log file and a CI page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[str(c) for c in header], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(indent + line for line in lines)


def metrics_table(stage: str, results: Sequence[dict[str, float]]) -> str:
    """`trainkit test`/`validate` results, one row per metric, one column per dataloader, 4 significant digits."""
    keys = sorted({key.split("/dataloader_idx_")[0] for result in results for key in result})
    columns = ["value"] if len(results) == 1 else [f"dataloader {i}" for i in range(len(results))]
    header = [f"{stage} metric", *columns]
    rows = [[key, *(number(_value(result, key)) for result in results)] for key in keys]
    return format_table(header, rows)


def _value(result: dict[str, float], key: str) -> float | None:
    return next((float(v) for k, v in result.items() if k.split("/dataloader_idx_")[0] == key), None)


def number(value: float | None) -> str:
    """A metric value in 4 significant digits, or '-'."""
    return "-" if value is None else f"{value:.4g}"


def duration(seconds: float | None) -> str:
    """350ms, 12s, 3m05s, 2h07m."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

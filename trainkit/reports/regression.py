"""Regression report: predicted against true for each target with its R2, and the residual histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from trainkit.reports._plot import grid, pyplot, save, write_csv
from trainkit.reports.base import ReportWriter

TARGETS_SHOWN = 9


class RegressionReport(ReportWriter):
    """predicted_vs_true.png, residuals.png and per_target.csv (R2, MAE, RMSE) from the test predictions."""

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        from sklearn.metrics import r2_score

        pred, true = (data[key].numpy().reshape(len(data[key]), -1) for key in ("preds", "target"))
        names = _target_names(task, pred.shape[1])
        r2 = [float(r2_score(true[:, i], pred[:, i])) for i in range(pred.shape[1])]
        residual = pred - true
        rows = zip(names, r2, np.abs(residual).mean(axis=0), np.sqrt((residual**2).mean(axis=0)), strict=True)
        return [
            write_csv(out_dir / "per_target.csv", ["target", "r2", "mae", "rmse"], rows),
            _plot_scatter(pred, true, names, r2, out_dir / "predicted_vs_true.png"),
            _plot_residuals(residual, names, out_dir / "residuals.png"),
        ]


def _target_names(task: Any, count: int) -> list[str]:
    names = getattr(getattr(task.trainer, "datamodule", None), "target_names", None) or []
    return [str(n) for n in names] if len(names) == count else [f"target {i}" for i in range(count)]


def _panels(count: int, height: float) -> tuple[Any, list[Any]]:
    """A figure with one panel per target (up to TARGETS_SHOWN), three a row; the unused ones hidden."""
    shown = min(count, TARGETS_SHOWN)
    rows, columns = grid(shown, 3)
    fig, axes = pyplot().subplots(rows, columns, figsize=(3.6 * columns, height * rows), squeeze=False)
    for ax in axes.flat[shown:]:
        ax.axis("off")
    return fig, list(axes.flat[:shown])


def _plot_scatter(pred: np.ndarray, true: np.ndarray, names: list[str], r2: list[float], path: Path) -> Path:
    fig, axes = _panels(len(names), 3.4)
    for i, ax in enumerate(axes):
        low, high = float(min(true[:, i].min(), pred[:, i].min())), float(max(true[:, i].max(), pred[:, i].max()))
        ax.plot([low, high], [low, high], color="gray", linewidth=1, linestyle="--", label="y = x")
        ax.scatter(true[:, i], pred[:, i], s=10, alpha=0.6)
        ax.set_xlabel(f"true {names[i]}")
        ax.set_ylabel(f"predicted {names[i]}")
        ax.set_title(f"{names[i]}: R2 = {r2[i]:.3f}", fontsize=10)
    fig.suptitle(f"test predictions against truth ({len(true)} samples)")
    fig.tight_layout()
    return save(fig, path)


def _plot_residuals(residual: np.ndarray, names: list[str], path: Path) -> Path:
    fig, axes = _panels(len(names), 3.0)
    for i, ax in enumerate(axes):
        ax.hist(residual[:, i], bins=30, color="tab:blue", alpha=0.8)
        ax.axvline(0, color="gray", linewidth=1, linestyle="--")
        ax.set_xlabel(f"predicted - true ({names[i]})")
        ax.set_title(f"mean {residual[:, i].mean():+.3g}, std {residual[:, i].std():.3g}", fontsize=10)
    fig.suptitle("test residuals")
    fig.tight_layout()
    return save(fig, path)

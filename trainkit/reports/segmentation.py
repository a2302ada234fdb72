"""Segmentation report: image, true mask and predicted mask side by side for a few test samples, and the per-class
IoU the test already computed as a bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from trainkit.reports._plot import displayable, label_names, pyplot, save, write_csv
from trainkit.reports.base import ReportWriter

SAMPLES_SHOWN = 4


class SegmentationReport(ReportWriter):
    """overlays.png (the first test samples) and per_class_iou.png/.csv (the logged test/iou_<class> values)."""

    def __init__(self, shown: int = SAMPLES_SHOWN) -> None:
        super().__init__()
        self.shown, self.count = shown, 0

    def update(self, task: Any, batch: Any, preds: Tensor, target: Tensor) -> None:
        need = self.shown - self.count  # a Python count: deciding needs no read-back from the device
        if need > 0 and isinstance(batch, list | tuple):
            self.keep(image=batch[0][:need], target=target[:need], pred=preds[:need])
            self.count += len(target[:need])

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        num_classes = int(getattr(task, "num_classes", 0) or int(data["target"].max()) + 1)
        names = label_names(task, num_classes)
        paths = [_plot_overlays(data, names, out_dir / "overlays.png")]
        metrics = task.trainer.callback_metrics
        iou = [metrics.get(f"test/iou_{name}") for name in names]
        dice = [metrics.get(f"test/dice_{name}") for name in names]
        if all(value is not None for value in iou):
            iou_values = [float(value) for value in iou]
            rows = zip(names, iou_values, [float(v) if v is not None else "" for v in dice], strict=True)
            paths.append(write_csv(out_dir / "per_class.csv", ["class", "iou", "dice"], rows))
            paths.append(_plot_iou(names, iou_values, out_dir / "per_class_iou.png"))
        return paths


def _plot_overlays(data: dict[str, Tensor], names: list[str], path: Path) -> Path:
    plt = pyplot()
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    images = displayable(data["image"].numpy())
    colors = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors[: len(names)]
    cmap, norm = ListedColormap(colors), BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names))
    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.5 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        gray = image if image.ndim == 2 else None
        for col, (title, mask) in enumerate((("image", None), ("true mask", data["target"][row]),
                                             ("predicted mask", data["pred"][row]))):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray" if gray is not None else None)
            if mask is not None:
                ax.imshow(mask.numpy(), cmap=cmap, norm=norm, alpha=0.55, interpolation="nearest")
            ax.set_title(title if row == 0 else "", fontsize=10)
            ax.axis("off")
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colors, names, strict=True)],
               loc="lower center", ncol=min(len(names), 6), frameon=False)
    fig.suptitle("test samples: image, true mask, predicted mask")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save(fig, path)


def _plot_iou(names: list[str], iou: list[float], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(names) + 2), 3.5))
    bars = ax.bar(names, iou, color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test IoU")
    ax.set_title(f"per-class test IoU (mean {np.mean(iou):.3f})")
    ax.tick_params(axis="x", rotation=45 if len(names) > 6 else 0)
    return save(fig, path)

"""Classification report: confusion matrix (counts and row-normalised), per-class precision/recall/F1/support, the
test images the model got wrong most confidently, and ROC and precision-recall curves for binary and multi-label
runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainkit.reports._plot import displayable, grid, label_names, pyplot, save, write_csv
from trainkit.reports.base import ReportWriter

WRONG_SHOWN = 16


class ClassificationReport(ReportWriter):
    """confusion_matrix.png/.csv, per_class.csv and most_confident_wrong.png from the test steps' logits."""

    def __init__(self, shown: int = WRONG_SHOWN) -> None:
        super().__init__()
        self.shown = shown
        self.wrong: dict[str, Tensor] = {}

    def update(self, task: Any, batch: Any, preds: Tensor, target: Tensor) -> None:
        mode = getattr(task, "mode", "multiclass")
        if mode == "multilabel":  # no single class per sample: only the per-label table and curves
            self.keep(prob=preds.detach(), target=target)
            return
        if mode == "binary":  # preds are the (threshold-shifted) probabilities of the second class
            predicted = (preds.detach() > 0.5).long()
            confidence = torch.where(predicted.bool(), preds.detach(), 1 - preds.detach())
            self.keep(pred=predicted, target=target, prob=preds.detach())
        else:
            confidence, predicted = preds.detach().softmax(dim=-1).max(dim=-1)
            self.keep(pred=predicted, target=target)
        images = batch[0] if isinstance(batch, list | tuple) else None
        if isinstance(images, Tensor) and images.ndim == 4 and len(images) == len(target):  # images only, not rows
            self._keep_most_confident_wrong(images.detach(), predicted, target, confidence)

    def _keep_most_confident_wrong(self, images: Tensor, pred: Tensor, target: Tensor, confidence: Tensor) -> None:
        """A running top-k of the wrong predictions by confidence, on the device: no per-step read-back."""
        # Right predictions get -1, so they sort last and are dropped when the report is drawn.
        new = {"score": torch.where(pred != target, confidence, -1.0), "image": images, "pred": pred, "target": target}
        merged = {key: torch.cat([self.wrong[key], value]) if self.wrong else value for key, value in new.items()}
        top = merged["score"].topk(min(self.shown, len(merged["score"]))).indices
        self.wrong = {key: value[top] for key, value in merged.items()}

    def gathered(self, task: Any) -> dict[str, Tensor]:
        self.kept.update({f"wrong_{key}": [value] for key, value in self.wrong.items()})
        return super().gathered(task)

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        if getattr(task, "mode", "multiclass") == "multilabel":
            return _write_multilabel(task, data, out_dir)
        num_classes = int(getattr(task, "num_classes", 0) or int(max(data["pred"].max(), data["target"].max())) + 1)
        names = label_names(task, num_classes)
        target, pred = data["target"].numpy(), data["pred"].numpy()
        labels = list(range(num_classes))
        counts = confusion_matrix(target, pred, labels=labels)
        precision, recall, f1, support = precision_recall_fscore_support(
            target, pred, labels=labels, zero_division=0
        )
        paths = [
            write_csv(out_dir / "confusion_matrix.csv", ["true \\ predicted", *names],
                      ([name, *row] for name, row in zip(names, counts.tolist(), strict=True))),
            write_csv(out_dir / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
                      zip(names, precision, recall, f1, support.tolist(), strict=True)),
            _plot_confusion(counts, names, out_dir / "confusion_matrix.png"),
        ]
        if "wrong_score" in data and bool((data["wrong_score"] >= 0).any()):
            paths.append(_plot_wrong(data, names, out_dir / "most_confident_wrong.png", self.shown))
        if "prob" in data:
            paths.append(_plot_curves(data["target"].numpy()[:, None], data["prob"].numpy()[:, None], [names[1]],
                                      out_dir / "roc_pr_curves.png"))
        return paths


def _write_multilabel(task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
    """per_class.csv (one row per label) and the ROC/PR curves of a multi-label run."""
    from sklearn.metrics import precision_recall_fscore_support

    target, prob = data["target"].numpy(), data["prob"].numpy()
    names = label_names(task, target.shape[1])
    precision, recall, f1, support = precision_recall_fscore_support(target, prob > 0.5, zero_division=0)
    return [
        write_csv(out_dir / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
                  zip(names, precision, recall, f1, support.tolist(), strict=True)),
        _plot_curves(target, prob, names, out_dir / "roc_pr_curves.png"),
    ]


def _plot_curves(target: np.ndarray, prob: np.ndarray, names: list[str], path: Path) -> Path:
    """ROC and precision-recall curves, one per label (column), with AUROC and average precision in the legend."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    plt = pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 5))
    for column, name in enumerate(names):
        if len(np.unique(target[:, column])) < 2:  # a curve needs both outcomes among the test samples
            continue
        RocCurveDisplay.from_predictions(target[:, column], prob[:, column], name=name, ax=roc)
        PrecisionRecallDisplay.from_predictions(target[:, column], prob[:, column], name=name, ax=pr)
    roc.set_title("test ROC")
    pr.set_title("test precision-recall")
    return save(fig, path)


def _plot_confusion(counts: np.ndarray, names: list[str], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    size = min(18.0, 3.0 + 0.45 * len(names))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    annotate = len(names) <= 30  # beyond that the numbers overlap; the colours still read
    for ax, values, title, fmt in ((axes[0], counts, "counts", "d"), (axes[1], normalised, "row-normalised", ".2f")):
        display = ConfusionMatrixDisplay(values, display_labels=names)
        display.plot(ax=ax, cmap="Blues", colorbar=False, include_values=annotate, values_format=fmt,
                     xticks_rotation="vertical" if len(names) > 10 or max(map(len, names)) > 3 else "horizontal")
        ax.set_title(f"test confusion matrix ({title})")
    total = int(counts.sum())
    fig.suptitle(f"{total} test samples, accuracy {np.trace(counts) / max(total, 1):.4f}")
    return save(fig, path)


def _plot_wrong(data: dict[str, Tensor], names: list[str], path: Path, shown: int) -> Path:
    plt = pyplot()
    order = torch.argsort(data["wrong_score"], descending=True)
    order = order[data["wrong_score"][order] >= 0][:shown]
    images = displayable(data["wrong_image"][order].numpy())
    rows, columns = grid(len(order))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, index in zip(axes.flat, images, order.tolist(), strict=False):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        true, pred = names[int(data["wrong_target"][index])], names[int(data["wrong_pred"][index])]
        ax.set_title(f"true {true}\npred {pred} ({float(data['wrong_score'][index]):.2f})", fontsize=9)
    fig.suptitle("most confidently wrong test images (predicted probability)")
    return save(fig, path)

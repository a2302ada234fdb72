"""Metric-learning report: a 2-D t-SNE map of the test embeddings coloured by class, and recall@k for k = 1..K
of the same leave-one-out cosine nearest-neighbour search the test metrics use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainkit.reports._plot import label_names, pyplot, save, write_csv
from trainkit.reports.base import ReportWriter

MAX_K = 10
MAX_POINTS = 2000  # t-SNE is quadratic in the points; a sample of 2,000 draws in seconds and shows the clusters


class MetricLearningReport(ReportWriter):
    """embeddings_2d.png, recall_at_k.png and recall_at_k.csv from the test embeddings."""

    def write(self, task: Any, data: dict[str, Tensor], out_dir: Path) -> list[Path]:
        embeddings, labels = data["preds"], data["target"].long()
        k_max = max(MAX_K, int(getattr(task.hparams, "recall_k", MAX_K)))
        recalls = recall_at_ks(embeddings, labels, min(k_max, len(labels) - 1))
        ks = range(1, len(recalls) + 1)
        return [
            write_csv(out_dir / "recall_at_k.csv", ["k", "recall"], zip(ks, recalls, strict=True)),
            _plot_recall(recalls, out_dir / "recall_at_k.png"),
            _plot_projection(embeddings.numpy(), labels.numpy(), task, out_dir / "embeddings_2d.png"),
        ]


def recall_at_ks(embeddings: Tensor, labels: Tensor, k_max: int, chunk: int = 1024) -> list[float]:
    """Share of samples with a same-class sample among their k nearest others (cosine), for k = 1..k_max."""
    normed = torch.nn.functional.normalize(embeddings.float(), dim=1)
    hits = []
    for start in range(0, len(normed), chunk):  # chunks keep the similarity matrix small for large test sets
        similarity = normed[start : start + chunk] @ normed.T
        rows = torch.arange(start, min(start + chunk, len(normed)))
        similarity[rows - start, rows] = -float("inf")  # leave the query itself out
        neighbours = similarity.topk(k_max, dim=1).indices
        hits.append((labels[neighbours] == labels[rows, None]).cummax(dim=1).values)
    return torch.cat(hits).float().mean(dim=0).tolist()


def _plot_recall(recalls: list[float], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ks = np.arange(1, len(recalls) + 1)
    ax.plot(ks, recalls, marker="o")
    for k, value in zip(ks, recalls, strict=True):
        if k in (1, len(recalls)) or k == 5:
            ax.annotate(f"{value:.3f}", (k, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(ks)
    ax.set_ylim(min(recalls) - 0.05, 1.02)
    ax.set_xlabel("k (nearest neighbours searched)")
    ax.set_ylabel("recall@k")
    ax.set_title("test retrieval: recall@k (leave-one-out, cosine)")
    ax.grid(alpha=0.3)
    return save(fig, path)


def _plot_projection(embeddings: np.ndarray, labels: np.ndarray, task: Any, path: Path) -> Path:
    from sklearn.manifold import TSNE

    if len(embeddings) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(embeddings), MAX_POINTS, replace=False)
        embeddings, labels = embeddings[keep], labels[keep]
    perplexity = float(min(30, max(2, (len(embeddings) - 1) // 3)))
    points = TSNE(2, perplexity=perplexity, init="pca", random_state=0).fit_transform(embeddings)
    classes = np.unique(labels)
    names = label_names(task, int(classes.max()) + 1)
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for index, cls in enumerate(classes):
        chosen = labels == cls
        ax.scatter(points[chosen, 0], points[chosen, 1], s=10, color=cmap(index % cmap.N), label=names[cls])
    if len(classes) <= 20:
        ax.legend(markerscale=2, fontsize=8, loc="best", title="class")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"test embeddings, t-SNE to 2-D ({len(points)} samples)")
    return save(fig, path)

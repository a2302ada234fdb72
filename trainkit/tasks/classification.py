"""Image classification: a timm backbone (or any nn.Module) trained with cross-entropy."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from trainkit.augment import MixupConfig
from trainkit.errors import ConfigError
from trainkit.losses import balanced_class_weights, dataset_labels
from trainkit.models import create_backbone
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.reports.classification import ClassificationReport
from trainkit.tasks.base import TaskModule


class ClassificationModule(TaskModule):
    """Classify images into `num_classes`; logs loss, top-1/top-5 accuracy and macro F1 per stage."""

    matched_data_attributes = ("num_classes", "in_chans")
    report_writer = ClassificationReport

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
        mixup: MixupConfig | None = None,
        class_weights: Literal["balanced"] | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            backbone: a timm model name, or a whole network (class_path) mapping images to `num_classes` logits.
            num_classes: number of classes; must match the data.
            in_chans: input channels of a timm backbone (1 for grayscale); ignored for a given network.
            pretrained: load timm's pretrained weights (downloads; needs internet or a filled cache).
            label_smoothing: cross-entropy label smoothing (used when no `loss` is given).
            drop_rate: dropout before the classifier of a timm backbone.
            drop_path_rate: stochastic depth rate of a timm backbone.
            backbone_kwargs: extra arguments for timm.create_model.
            loss: a loss module taking (logits, targets); defaults to cross-entropy. With mixup it also gets
                probability targets (N, num_classes), as nn.CrossEntropyLoss and trainkit.losses.FocalLoss accept.
            mixup: mix training batches with mixup/CutMix (timm); label_smoothing then smooths the mixed targets.
            class_weights: "balanced" weights the loss by inverse class frequency of the training set.
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
        self.mixup = mixup.build(num_classes, label_smoothing) if mixup is not None else None
        # Mixed targets already carry the smoothing, so the default training loss is plain CE on probabilities
        # (equal to timm's SoftTargetCrossEntropy, but it also takes class weights).
        default_train_loss = nn.CrossEntropyLoss() if mixup is not None else self.criterion
        self.train_criterion = loss if loss is not None else default_train_loss
        self.class_weights = class_weights
        if class_weights is not None:
            self._prepare_class_weights()
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
        if stage == "train" and self.mixup is not None:
            mixed_x, soft_y = self.mixup(x, y)
            logits = self(mixed_x)
            return self.train_criterion(logits, soft_y), logits, y  # train metrics compare with the unmixed labels
        logits = self(x)
        return (self.train_criterion if stage == "train" else self.criterion)(logits, y), logits, y

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.class_weights == "balanced" and stage == "fit":
            self._set_class_weights()

    def _prepare_class_weights(self) -> None:
        """Give the training loss its own weight buffer now, so the module's structure never changes in setup."""
        if not hasattr(self.train_criterion, "weight"):
            raise ConfigError(
                f"class_weights={self.class_weights} needs a loss with a `weight`, but "
                f"{type(self.train_criterion).__name__} has none; use nn.CrossEntropyLoss or trainkit.losses.FocalLoss"
            )
        if self.train_criterion is self.criterion:  # weight the training loss only: val/test losses stay comparable
            self.train_criterion = copy.deepcopy(self.criterion)
        # Not persistent: recomputed from the data on every fit, so checkpoints load into a model without it.
        self.train_criterion.register_buffer("weight", torch.ones(self.num_classes), persistent=False)

    def _set_class_weights(self) -> None:
        labels = dataset_labels(self.trainer.datamodule.train_dataloader().dataset)
        self.train_criterion.weight.copy_(balanced_class_weights(labels, self.num_classes))

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

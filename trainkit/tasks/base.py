"""TaskModule: the shared base of every task family. It owns optimizer/scheduler wiring, `stage/metric` logging
and the checks that the model matches its data, so task files only say what is particular to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import ClasswiseWrapper, Metric, MetricCollection

from trainkit.errors import ConfigError
from trainkit.models.lora import restore_lora
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.optim.param_groups import BackboneSplit
from trainkit.pretrained import normalization
from trainkit.reports.base import ReportWriter, write_report

STAGES = ("train", "val", "test")


def data_class_names(datamodule: Any) -> list[str] | None:
    """The DataModule's `class_names` (or a wrapped DataModule's), as strings; None when it has none."""
    for source in (datamodule, getattr(datamodule, "data", None)):
        names = getattr(source, "class_names", None) if source is not None else None
        if names:
            return [str(name) for name in names]
    return None


class TaskModule(LightningModule):
    """Base LightningModule: subclasses implement `forward` and `step`, and register metrics with `init_metrics`."""

    matched_data_attributes: tuple[str, ...] = ()
    """Attributes that must agree between the model and its DataModule (e.g. num_classes)."""
    report_writer: type[ReportWriter] | None = None
    """Draws the task's report into the run folder when a test ends (see trainkit.reports); None draws none."""
    class_names: list[str] | None = None
    """The data's class (or label) names: read from the DataModule's `class_names` in setup and kept in the
    checkpoint, so reports and predictions of a checkpoint alone show names."""
    step_loss: Tensor | None = None
    """The latest training step's mean loss (a device tensor), set by a task whose returned loss is a sum (the
    language model's token sum under accumulation), so the loss-spike guard judges means; None: the returned loss."""

    def __init__(self, optimizer: OptimizerConfig | None = None, scheduler: SchedulerConfig | None = None) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            optimizer: optimizer name and arguments (AdamW, lr 1e-3 by default).
            scheduler: LR schedule; none keeps the LR constant.
        """
        super().__init__()
        self.optimizer_config = optimizer or OptimizerConfig()
        self.scheduler_config = scheduler
        self.base_lr = self.optimizer_config.lr  # after configure_optimizers: the LR scaled to the batch size
        self.train_metrics: MetricCollection | None = None
        self.val_metrics: MetricCollection | None = None
        self.test_metrics: MetricCollection | None = None
        self.breakdown: nn.ModuleDict | None = None
        self._report: ReportWriter | None = None

    def init_metrics(self, metrics: dict[str, Metric]) -> None:
        """Register one copy of `metrics` per stage, logged as `train/...`, `val/...`, `test/...`."""
        # compute_groups=False: torchmetrics may otherwise merge metrics whose states happen to match on the first
        # batch (e.g. top-5 accuracy and macro F1) and report one's value for the other.
        collection = MetricCollection(metrics, compute_groups=False)
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", collection.clone(prefix=f"{stage}/"))

    def init_breakdown(self, metrics: dict[str, Metric], labels: list[str]) -> None:
        """Also log on val/test one value per label (class or target) of each metric, e.g. `val/iou_circle`.

        Each metric must give one value per label (average=None, multioutput="raw_values"); keys become
        `stage/<key>_<label>`. Called from `setup`, where the data's label names are known; once per module.
        """
        if self.breakdown is not None:
            return
        wrapped = {key: ClasswiseWrapper(metric, labels=labels, prefix=f"{key}_") for key, metric in metrics.items()}
        collection = MetricCollection(wrapped, compute_groups=False)
        self.breakdown = nn.ModuleDict({stage: collection.clone(prefix=f"{stage}/") for stage in ("val", "test")})

    def step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        """Return (loss, predictions for the metrics, targets) for one batch."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        loss, preds, target = self.step(batch, stage)
        is_train = stage == "train"
        # Per-step values only for training; val/test are epoch means, synced across processes.
        self.log(f"{stage}/loss", loss, on_step=is_train, on_epoch=True, prog_bar=True,
                 batch_size=len(target), sync_dist=not is_train)
        metrics: MetricCollection | None = getattr(self, f"{stage}_metrics")
        if len(target) == 0:  # e.g. a distillation batch of unlabelled pool samples only: nothing to score
            return loss
        if metrics is not None:
            # Only update here; each self.log call costs Lightning ~0.2 ms of CPU, so the metrics are logged once
            # per epoch in `_log_epoch_metrics` (their compute() syncs the processes itself).
            metrics.update(preds, target)
        if self.breakdown is not None and stage in self.breakdown:
            self.breakdown[stage].update(preds, target)
        if stage == "test" and self._report is not None:
            self._report.update(self, batch, preds, target)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def on_test_start(self) -> None:
        self._report = self.report_writer() if self.report_writer is not None else None

    def on_test_end(self) -> None:
        if self._report is not None:
            write_report(self, self._report)
            self._report = None

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics: MetricCollection | None = getattr(self, f"{stage}_metrics")
        if metrics is not None and any(metric.update_called for metric in metrics.values()):
            self.log_dict(metrics.compute(), prog_bar=stage != "train")
            metrics.reset()
        breakdown = self.breakdown[stage] if self.breakdown is not None and stage in self.breakdown else None
        if breakdown is not None and any(metric.update_called for metric in breakdown.values()):
            self.log_dict(breakdown.compute())
            breakdown.reset()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Only on the steps the loggers write (the check Lightning's LearningRateMonitor uses): one log call less
        # per step. `_logger_connector` is private: Lightning has no public "is this a logging step".
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if optimizer is not None and self.trainer._logger_connector.should_update_logs:
            self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.class_names is not None:
            checkpoint["class_names"] = list(self.class_names)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the LoRA adapters a checkpoint's weights were trained with, before Lightning loads them."""
        if checkpoint.get("class_names") is not None and self.class_names is None:
            self.class_names = list(checkpoint["class_names"])
        trainer = self._trainer
        fitting = trainer is not None and trainer.state.fn == "fit"
        restore_lora(self.optimized_module(), checkpoint, fitting=fitting)

    def optimized_module(self) -> nn.Module:
        """The module whose trainable parameters the optimizer covers (a distillation student overrides it)."""
        return self

    def backbone_and_head(self) -> BackboneSplit | None:
        """(network, its head): the network's parameters outside the head are the backbone, for discriminative LRs,
        layer decay and freezing. By default the first timm model in `optimized_module()` and its `get_classifier()`;
        a task with another layout overrides this (e.g. `return self.encoder, None`)."""
        for module in self.optimized_module().modules():
            if callable(getattr(module, "get_classifier", None)):
                head = module.get_classifier()
                return module, head if isinstance(head, nn.Module) else None
        return None

    def build_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The optimizer `configure_optimizers` uses, at `lr`: param groups with the backbone/head split and layer
        decay; the preflight builds its copy here too, so both always agree."""
        return self.optimizer_config.build(self.optimized_module(), lr, self.backbone_and_head())

    def configure_optimizers(self) -> Any:
        trainer = self._trainer
        self.base_lr = self.optimizer_config.scaled_lr(trainer)
        optimizer = self.build_optimizer(self.base_lr)
        # A fast_dev_run (`trainkit check`, smoke runs) takes one batch: there is no run length for a schedule to span.
        if self.scheduler_config is None or (trainer is not None and trainer.fast_dev_run):
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_config.build(optimizer, trainer)}

    def setup(self, stage: str) -> None:
        self._check_matches_data()
        if self.class_names is None:
            self.class_names = data_class_names(getattr(self.trainer, "datamodule", None) if self._trainer else None)
        self._offer_pretrained_normalization()

    def _offer_pretrained_normalization(self) -> None:
        """Tell a DataModule that can use it how the pretrained weights normalized their inputs (it keeps its own
        mean/std when the config sets them)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not self.hparams.get("pretrained") or not hasattr(datamodule, "use_pretrained_normalization"):
            return
        split = self.backbone_and_head()
        if split is not None and (weights_norm := normalization(split[0])) is not None:
            datamodule.use_pretrained_normalization(*weights_norm)

    def _check_matches_data(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        for name in self.matched_data_attributes:
            ours, theirs = getattr(self, name, None), getattr(datamodule, name, None)
            if ours is not None and theirs is not None and ours != theirs:
                raise ConfigError(
                    f"model.{name}={ours} but the data has {name}={theirs}; set --model.{name} {theirs}"
                )

    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        inputs = batch[0] if isinstance(batch, list | tuple) else batch
        return self(inputs)

    def prediction_keys(self) -> list[str] | None:
        """The file path or row id of each predicted sample when predicting on `--source`, else None."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(datamodule, "predict_keys", None)

    def write_predictions(self, predictions: list[Any], out_dir: Path) -> Path:
        """Save what `predict_step` returned; tasks override this to write their natural format."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "predictions.pt"
        torch.save(predictions, path)
        return path

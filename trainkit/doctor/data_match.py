"""Model/data mismatches found on the first batch, before training: the network's output width against
`num_classes`, label values outside [0, num_classes), regression data under a classifier and the reverse, image
labels under a segmentation model and the reverse, and targets of the wrong shape for the loss. Each problem is one
line naming the fix."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Subset, TensorDataset


def model_data_mismatches(module: Any, batch: Any, datamodule: Any = None) -> list[str]:
    """Problems between a task module and one (inputs, targets) batch of its data; [] when they fit."""
    if not (isinstance(batch, list | tuple) and len(batch) == 2 and all(isinstance(b, Tensor) for b in batch)):
        return []  # not (inputs, targets): language, metric-learning pairs, ... have their own checks
    x, y = batch
    if hasattr(module, "ignore_index") and hasattr(module, "num_classes"):
        return _segmentation_targets(y)
    if hasattr(module, "output_width") and hasattr(module, "num_classes"):
        problems = _classification_targets(module, y, _stored_labels(datamodule))
        return problems or _output_width(module, x)
    if hasattr(module, "num_outputs") and hasattr(module, "target_mean"):
        return _regression_targets(module, y)
    return []


def _segmentation_targets(y: Tensor) -> list[str]:
    """A segmentation model needs one class index per pixel: (N, H, W) masks."""
    if y.ndim == 3 and not y.is_floating_point():
        return []
    if y.ndim == 4 and y.shape[1] == 1 and not y.is_floating_point():
        return []  # (N, 1, H, W): the task squeezes the channel
    kind = "one label per image" if y.ndim == 1 else f"{'float' if y.is_floating_point() else 'integer'} targets"
    return [f"the segmentation model needs a mask per image (integer targets of shape (N, H, W)) but the data gives "
            f"{kind}, shape {tuple(y.shape)}; train a ClassificationModule on this data, or give the model a mask "
            "DataModule (MaskFolderDataModule: images/ and masks/ folders)"]


def _classification_targets(module: Any, y: Tensor, stored: Tensor | None) -> list[str]:
    classes, mode = module.num_classes, getattr(module, "mode", "multiclass")
    shape = tuple(y.shape)
    if y.ndim >= 3 and not y.is_floating_point():
        return [f"the data gives a mask per image (shape {shape}) but the model is a classifier, which needs one "
                "label per image; train a SegmentationModule on this data"]
    if mode == "multilabel":
        if y.ndim != 2 or y.shape[1] != classes:
            return [f"mode=multilabel needs targets of shape (N, {classes}) (one 0/1 column per label) but the data "
                    f"gives {shape}; for a CSV set --data.init_args.task multilabel, or match num_classes"]
        return []
    zero_one = bool(((y == 0) | (y == 1)).all())
    if mode == "multiclass" and y.is_floating_point():
        if y.ndim == 2 and y.shape[1] == classes and zero_one:
            return [f"the data gives 0/1 targets of shape {shape}, one column per label, but mode=multiclass needs "
                    "one class index per sample; set --model.init_args.mode multilabel"]
        return [f"the data gives numeric targets (float, shape {shape}) but the model is a classifier; train a "
                "RegressionModule, or for a CSV of class labels set --data.init_args.task classification"]
    if y.reshape(len(y), -1).shape[1] != 1:
        return [f"mode={mode} needs one class index per sample, shape (N,), but the data gives targets of shape "
                f"{shape}; for a CSV set --data.init_args.task classification, or choose the mode that fits"]
    if mode == "binary" and not zero_one:
        return [f"mode=binary needs 0/1 targets but the data gives values from {float(y.min()):g} to "
                f"{float(y.max()):g}; use mode multiclass with num_classes set to the number of classes"]
    labels = stored if stored is not None else y.long()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        return [f"label value {bad} is outside [0, {classes}) for num_classes={classes}; set "
                f"--model.init_args.num_classes {high + 1}" + (" (or fix the negative labels)" if low < 0 else "")]
    return []


def _output_width(module: Any, x: Tensor) -> list[str]:
    """Run the network on two samples: its output must be (N, width)."""
    was_training = module.training
    module.eval()  # no BatchNorm statistics move, no dropout
    try:
        with torch.no_grad():
            out = module(x[:2])
    finally:
        module.train(was_training)
    width, classes = module.output_width, module.num_classes
    if isinstance(out, Tensor) and out.ndim == 2 and out.shape[1] == width:
        return []
    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    fit = f"set --model.init_args.num_classes {out.shape[1]}" if isinstance(out, Tensor) and out.ndim == 2 else (
        "flatten and project it to (N, classes)")
    return [f"the network outputs {got} for {len(x[:2])} samples but num_classes={classes} "
            f"({getattr(module, 'mode', 'multiclass')}) needs (N, {width}); make its last layer output {width} "
            f"(e.g. nn.Linear(..., {width})), or {fit}"]


def _regression_targets(module: Any, y: Tensor) -> list[str]:
    if not y.is_floating_point():
        return [f"the data gives class labels (integer targets, shape {tuple(y.shape)}) but the model is a "
                "RegressionModule; train a ClassificationModule (--model.init_args.num_classes N), or for a CSV of "
                "numbers set --data.init_args.task regression"]
    per_sample = y[0].numel() if y.ndim > 0 and len(y) else 1
    if per_sample != module.num_outputs:
        return [f"the data gives {per_sample} target value(s) per sample (shape {tuple(y.shape)}) but "
                f"num_outputs={module.num_outputs}; set --model.init_args.num_outputs {per_sample}"]
    return []


def stored_labels(dataset: Any) -> Tensor | None:
    """A dataset's labels where it stores them (`labels`, `targets`, a TensorDataset's second tensor), through any
    Subsets; None otherwise. No sample is read, so a whole split's labels cost nothing."""
    indices = None
    while isinstance(dataset, Subset):
        step = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = step if indices is None else step[indices]
        dataset = dataset.dataset
    labels = next((getattr(dataset, n) for n in ("labels", "targets") if getattr(dataset, n, None) is not None), None)
    if labels is None and isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        labels = dataset.tensors[1]
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    return labels if indices is None else labels[indices]


def _stored_labels(datamodule: Any) -> Tensor | None:
    """All training class labels where the data stores them, to judge their range beyond one batch."""
    loader_source = getattr(datamodule, "splits", None) or {}
    dataset = loader_source.get("train") if isinstance(loader_source, dict) else None
    if dataset is None and isinstance(getattr(datamodule, "arrays", None), dict) and "train" in datamodule.arrays:
        dataset = TensorDataset(*datamodule.arrays["train"])
    labels = stored_labels(dataset)
    if labels is None or labels.is_floating_point() or labels.ndim != 1 or not len(labels):
        return None
    return labels

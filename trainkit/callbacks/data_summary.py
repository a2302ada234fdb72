"""One line at the start of a fit that says what the model will learn from: split sizes, classes with their counts
per split, and the input shape, so a wrong folder or an unbalanced split shows before the first epoch."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import Dataset, TensorDataset

from trainkit.doctor.data_match import stored_labels
from trainkit.tasks.base import data_class_names

SHOWN_CLASSES = 12  # beyond that the line wraps; the rest are summarised as "+N more"


class DataSummary(Callback):
    """Prints `trainkit: data: train 1437, val 180, test 180; input 1x32x32; classes 0 (143/18/18), 1 (...) ...`."""

    def __init__(self, enabled: bool = True) -> None:
        """Args:
        enabled: print the data summary when a fit starts.
        """
        self.enabled = enabled

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            line = data_summary(trainer.datamodule, getattr(pl_module, "class_names", None))
            if line:
                print(f"trainkit: data: {line}", flush=True)


def data_summary(datamodule: Any, class_names: list[str] | None = None) -> str:
    """Split sizes, input shape and per-class counts of a DataModule's `splits` or `arrays`; '' when it has none."""
    splits = _splits(datamodule)
    if not splits:
        return ""
    parts = [", ".join(f"{name} {len(dataset)}" for name, dataset in splits.items())]
    first = next(iter(splits.values()))
    sample = first[0] if len(first) else None
    if isinstance(sample, list | tuple) and isinstance(sample[0], torch.Tensor):
        parts.append("input " + "x".join(map(str, sample[0].shape)))
    names = class_names or data_class_names(datamodule)
    if names:
        counts = {name: _label_counts(dataset, len(names)) for name, dataset in splits.items()}
        if all(c is not None for c in counts.values()):
            shown = [f"{n} ({'/'.join(str(int(c[i])) for c in counts.values())})"
                     for i, n in enumerate(names[:SHOWN_CLASSES])]
            more = f" +{len(names) - SHOWN_CLASSES} more" if len(names) > SHOWN_CLASSES else ""
            parts.append(f"{len(names)} classes ({'/'.join(splits)}): {', '.join(shown)}{more}")
        else:
            parts.append(f"{len(names)} classes: {', '.join(names[:SHOWN_CLASSES])}")
    return "; ".join(parts)


def _splits(datamodule: Any) -> dict[str, Dataset]:
    for source in (datamodule, getattr(datamodule, "data", None)):
        splits = getattr(source, "splits", None)
        if isinstance(splits, dict) and splits:
            return {name: splits[name] for name in ("train", "val", "test") if name in splits}
        arrays = getattr(source, "arrays", None)
        if isinstance(arrays, dict) and arrays:
            return {name: TensorDataset(*arrays[name]) for name in ("train", "val", "test") if name in arrays}
    return {}


def _label_counts(dataset: Dataset, num_classes: int) -> torch.Tensor | None:
    """Samples per class where the labels are stored (no sample is read); None otherwise."""
    labels = stored_labels(dataset)
    if labels is None:
        return None
    if labels.is_floating_point() and labels.ndim == 2 and labels.shape[1] == num_classes:  # multi-label 0/1 columns
        return labels.sum(dim=0)
    if labels.is_floating_point() or labels.ndim != 1:
        return None
    return torch.bincount(labels.long().clamp(0, num_classes), minlength=num_classes + 1)[:num_classes]

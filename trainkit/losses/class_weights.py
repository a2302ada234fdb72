"""Class weights from the training labels, for losses on imbalanced data (`class_weights: balanced`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from trainkit.errors import ConfigError


def balanced_class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """n_samples / (num_classes * count of each class): scikit-learn's "balanced" weights, mean 1 over samples."""
    from sklearn.utils.class_weight import compute_class_weight

    labels = torch.as_tensor(labels).flatten().cpu()
    missing = sorted(set(range(num_classes)) - set(labels.unique().tolist()))
    if missing:
        raise ConfigError(
            f"class_weights=balanced needs every class in the training set, but classes {missing} have no samples; "
            "drop class_weights or pass the loss explicit weights"
        )
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels.numpy())
    return torch.tensor(weights, dtype=torch.float32)


def dataset_labels(dataset: Dataset) -> Tensor:
    """The class label of every sample (long): read from `labels`/`targets` where the dataset has them, else by
    indexing; a ConfigError for samples that are not (input, label) pairs."""
    indices: Tensor | None = None
    while isinstance(dataset, Subset):  # torchvision sets and folders are split with (nested) Subsets
        step = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = step if indices is None else step[indices]
        dataset = dataset.dataset
    for name in ("labels", "targets"):
        stored = getattr(dataset, name, None)
        if stored is not None:
            stored = torch.as_tensor(stored, dtype=torch.long)
            return stored if indices is None else stored[indices]
    # Generic fallback: reads (and transforms) every sample once; only datasets without a label list pay for it.
    order = range(len(dataset)) if indices is None else indices.tolist()  # type: ignore[arg-type]
    try:
        return torch.as_tensor([int(dataset[i][1]) for i in order], dtype=torch.long)
    except (TypeError, IndexError, ValueError) as error:
        raise ConfigError(f"reading the class labels needs (input, label) samples; {type(dataset).__name__} gave "
                          f"{error}") from error

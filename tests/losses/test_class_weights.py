"""Balanced class weights: the numbers, label lookup through Subsets, and their use in a real training step."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import Subset, TensorDataset

from trainkit.errors import ConfigError
from trainkit.losses import FocalLoss, balanced_class_weights, dataset_labels
from trainkit.tasks import ClassificationModule


def test_balanced_weights_are_inverse_frequency() -> None:
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    # n / (classes * count): 10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)
    torch.testing.assert_close(balanced_class_weights(labels, 3), torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    with pytest.raises(ConfigError, match=r"classes \[3\] have no samples"):
        balanced_class_weights(labels, 4)


def test_labels_are_read_through_nested_subsets() -> None:
    class Labelled(TensorDataset):
        targets = [5, 6, 7, 8, 9]

    dataset = Subset(Subset(Labelled(torch.zeros(5)), [4, 2, 0]), [2, 0])
    assert dataset_labels(dataset).tolist() == [5, 9]  # outer [2, 0] -> inner [0, 4]
    plain = TensorDataset(torch.zeros(3), torch.tensor([2, 0, 1]))  # no label list: read sample by sample
    assert dataset_labels(Subset(plain, [1, 2])).tolist() == [0, 1]


@pytest.mark.parametrize("loss", [None, FocalLoss(gamma=1.0)])
def test_class_weights_weight_the_training_loss_only(loss: nn.Module | None) -> None:
    x, y = torch.randn(12, 4), torch.tensor([0] * 9 + [1] * 3)
    train = TensorDataset(x, y)
    data = LightningDataModule.from_datasets(train, train, batch_size=12)
    model = ClassificationModule(backbone=nn.Linear(4, 2), num_classes=2, loss=loss, class_weights="balanced")
    trainer = Trainer(max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=data)
    torch.testing.assert_close(model.train_criterion.weight, torch.tensor([12 / 18, 12 / 6]))
    assert getattr(model.criterion, "weight", None) is None  # val/test losses stay unweighted
    assert "train_criterion.weight" not in model.state_dict()  # recomputed from the data, not checkpointed


def test_class_weights_need_a_loss_that_takes_them() -> None:
    with pytest.raises(ConfigError, match="L1Loss has none"):
        ClassificationModule(backbone=nn.Linear(4, 2), num_classes=2, loss=nn.L1Loss(), class_weights="balanced")

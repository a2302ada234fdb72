"""ElasticNet: one real optimizer step equals SGD on loss + l1 * |w|_1 + l2 / 2 * |w|^2 of the weight matrices."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import TensorDataset

from trainkit.callbacks import ElasticNet
from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig
from trainkit.tasks import ClassificationModule


def test_one_step_matches_the_penalized_loss() -> None:
    x, y = torch.randn(8, 1, 2, 3), torch.randint(0, 3, (8,))
    data = LightningDataModule.from_datasets(train_dataset=TensorDataset(x, y), batch_size=8)
    sgd = OptimizerConfig(name="momentum", lr=0.1, momentum=0.0, weight_decay=0.0)  # plain SGD
    model = ClassificationModule(backbone=nn.Sequential(nn.Flatten(), nn.Linear(6, 3)), num_classes=3, optimizer=sgd)
    w0, b0 = model.net[1].weight.detach().clone(), model.net[1].bias.detach().clone()
    l1, l2 = 0.05, 0.2

    # The same step by hand: autograd through the loss with the penalty written into it (weights only, not biases).
    reference = nn.Linear(6, 3)
    reference.load_state_dict(model.net[1].state_dict())
    loss = nn.functional.cross_entropy(reference(x.flatten(1)), y)
    loss = loss + l1 * reference.weight.abs().sum() + 0.5 * l2 * reference.weight.pow(2).sum()
    loss.backward()
    expected_w, expected_b = w0 - 0.1 * reference.weight.grad, b0 - 0.1 * reference.bias.grad

    trainer = Trainer(max_steps=1, callbacks=[ElasticNet(l1=l1, l2=l2)], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=data)
    torch.testing.assert_close(model.net[1].weight.detach(), expected_w)
    torch.testing.assert_close(model.net[1].bias.detach(), expected_b)
    penalty = l1 * w0.abs().sum() + 0.5 * l2 * w0.pow(2).sum()
    assert trainer.callback_metrics["train/penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)


def test_rejects_negative_weights() -> None:
    with pytest.raises(ConfigError, match="l1=-1"):
        ElasticNet(l1=-1)

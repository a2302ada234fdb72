"""ClassificationModule: its loss, metrics and predictions, through real Lightning steps."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit.optim import OptimizerConfig
from trainkit.tasks import ClassificationModule


def _blobs(n: int = 64, classes: int = 8) -> TensorDataset:
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, 8, 8) * 0.1
    x[torch.arange(n), 0, y, y] += 1.0  # class c lights pixel (c, c)
    return TensorDataset(x, y)


def test_label_smoothing_is_torchs_cross_entropy() -> None:
    module = ClassificationModule("test_resnet", num_classes=8, in_chans=1, label_smoothing=0.2)
    logits, target = torch.randn(5, 8), torch.randint(0, 8, (5,))
    expected = nn.functional.cross_entropy(logits, target, label_smoothing=0.2)
    assert torch.isclose(module.criterion(logits, target), expected)
    assert not torch.isclose(module.criterion(logits, target), nn.functional.cross_entropy(logits, target))


def test_metrics_are_computed_separately_per_name() -> None:
    module = ClassificationModule("test_resnet", num_classes=8, in_chans=1)
    target = torch.arange(8)
    logits = torch.eye(8)
    logits[0] = torch.tensor([0, 5, 4, 3, 2, 1, 0, 0.0])  # target 0 ranks below five others: wrong even at top-5
    logits[1] = torch.tensor([5, 4, 0, 0, 0, 0, 0, 0.0])  # target 1 ranks second: wrong at top-1, right at top-5
    module.test_metrics.update(logits, target)
    values = module.test_metrics.compute()
    assert values["test/acc"] == 6 / 8
    assert values["test/acc_top5"] == 7 / 8
    assert values["test/f1"] != values["test/acc_top5"], "metrics with matching first-batch states stay separate"


def test_few_classes_drop_top5_and_a_given_network_is_used_as_is() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    module = ClassificationModule(net, num_classes=3)
    assert module.net is net and module.in_chans is None
    assert set(module.val_metrics.keys()) == {"val/acc", "val/f1"}


def test_real_steps_reduce_the_loss_and_predict_returns_classes() -> None:
    data = DataLoader(_blobs(), batch_size=16, shuffle=True)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
    module = ClassificationModule(net, num_classes=8, optimizer=OptimizerConfig(lr=0.02, weight_decay=0.0))
    trainer = Trainer(max_epochs=15, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    before = trainer.validate(module, data, verbose=False)[0]["val/loss"]
    trainer.fit(module, data, data)
    after = trainer.validate(module, data, verbose=False)[0]
    assert after["val/loss"] < before / 2 and after["val/acc"] > 0.9
    predictions = trainer.predict(module, data)
    assert set(predictions[0]) == {"probs", "target"}
    pred = torch.cat([p["probs"].argmax(dim=1) for p in predictions])
    assert pred.shape == (64,) and pred.max() < 8

"""ClassificationModule: its loss, metrics and predictions, through real Lightning steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit.data import CSVDataModule
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


def _multilabel_csv(path: Path, rows: int = 240) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 4, generator=generator)
    with path.open("w") as file:
        file.write("f1,f2,f3,f4,tags\n")
        for row in x.tolist():  # label a: f1 > 0, b: f2 > 0, c: f1 + f2 > 0.5; some rows have none
            tags = [name for name, on in zip("abc", (row[0] > 0, row[1] > 0, row[0] + row[1] > 0.5), strict=True) if on]
            file.write(",".join(f"{v:.4f}" for v in row) + "," + ";".join(tags) + "\n")


def test_multilabel_per_label_f1_and_auroc_match_torchmetrics(tmp_path: Path) -> None:
    from torchmetrics.functional.classification import multilabel_auroc, multilabel_f1_score

    _multilabel_csv(tmp_path / "tags.csv")
    data = CSVDataModule(str(tmp_path / "tags.csv"), target_columns=["tags"], task="multilabel", label_delimiter=";",
                         batch_size=32)
    thresholds = [0.5, 0.3, 0.7]
    module = ClassificationModule("mlp", num_classes=3, in_features=4, hidden_sizes=[16], mode="multilabel",
                                  threshold=thresholds, optimizer=OptimizerConfig(lr=0.02))
    trainer = Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    logged = trainer.test(module, datamodule=data, verbose=False)[0]
    assert data.class_names == ["a", "b", "c"] and logged["test/auroc"] > 0.8

    x, y = data.split_arrays("test")
    with torch.no_grad():
        probs = module(x).sigmoid()
    predicted = (probs > torch.tensor(thresholds)).long()  # each label's own threshold, applied by hand
    f1 = multilabel_f1_score(predicted, y.long(), num_labels=3, average=None)
    auroc = multilabel_auroc(probs, y.long(), num_labels=3, average=None)
    for index, name in enumerate("abc"):
        assert logged[f"test/f1_{name}"] == pytest.approx(float(f1[index]), abs=1e-6), name
        assert logged[f"test/auroc_{name}"] == pytest.approx(float(auroc[index]), abs=1e-6), name
    assert logged["test/f1"] == pytest.approx(float(f1.mean()), abs=1e-6)
    assert {"test/acc", "test/ap"} <= set(logged)


def test_binary_mode_is_one_logit_with_bce_and_logs_auroc_like_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 2, generator=generator)
    y = (x[:, 0] + 0.5 * torch.randn(96, generator=generator) > 0).long()
    data = DataLoader(TensorDataset(x, y), batch_size=32)
    module = ClassificationModule("mlp", num_classes=2, in_features=2, hidden_sizes=[8], mode="binary",
                                  optimizer=OptimizerConfig(lr=0.05))
    trainer = Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(module, data)
    logged = trainer.test(module, data, verbose=False)[0]
    with torch.no_grad():
        probs = module(x).squeeze(1).sigmoid()
    assert module(x).shape == (96, 1)
    assert logged["test/auroc"] == pytest.approx(roc_auc_score(y, probs), abs=1e-5)
    assert logged["test/ap"] == pytest.approx(average_precision_score(y, probs), abs=1e-4)
    assert logged["test/acc"] == pytest.approx(float(((probs > 0.5).long() == y).float().mean()), abs=1e-6)

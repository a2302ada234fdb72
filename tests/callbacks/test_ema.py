"""EMA and SWA: the average equals the one computed by hand, and it is what validation, checkpoints and test use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from torch import nn
from torch.utils.data import TensorDataset

from trainkit.callbacks import EMA, SWA, RunCheckpoint, attached
from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig
from trainkit.tasks import ClassificationModule


def tiny_data() -> LightningDataModule:
    generator = torch.Generator().manual_seed(0)  # the same data on every call
    x, y = torch.randn(48, 1, 4, 4, generator=generator), torch.randint(0, 3, (48,), generator=generator)
    train, val = TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:])
    return LightningDataModule.from_datasets(train_dataset=train, val_dataset=val, test_dataset=val, batch_size=8)


def tiny_model() -> ClassificationModule:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return ClassificationModule(backbone=net, num_classes=3, optimizer=OptimizerConfig(name="sgd", lr=0.5))


class RecordWeights(Callback):
    """The raw weights after every optimizer step and at every epoch end."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # noqa: ANN001, ANN002
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.epochs.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def fit(tmp_path: Path, *averages: Callback, epochs: int = 1) -> tuple[Trainer, ClassificationModule, RecordWeights]:
    record, model = RecordWeights(), tiny_model()
    checkpoint = RunCheckpoint(monitor="val/loss", mode="min")
    trainer = Trainer(
        max_epochs=epochs, callbacks=[record, *averages, checkpoint], default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=tiny_data())
    return trainer, model, record


def assert_states_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for name, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[name], value, msg=name)


def test_ema_equals_the_hand_computed_average(tmp_path: Path) -> None:
    ema = EMA(decay=0.9, warmup_power=0.75)
    trainer, model, record = fit(tmp_path, ema)
    assert len(record.steps) == 4
    # First update copies the weights; update n then blends with decay min(0.9, 1 - (1 + n) ** -0.75).
    expected = {k: v.clone() for k, v in record.steps[0].items()}
    for n, weights in enumerate(record.steps[1:], start=1):
        decay = min(0.9, 1 - (1 + n) ** -0.75)
        assert ema.decay_at(n) == pytest.approx(decay)
        for name, value in weights.items():
            if value.is_floating_point():
                expected[name] = decay * expected[name] + (1 - decay) * value
    assert decay < 0.9  # the warmup is still ramping after 4 steps
    # After fit the model holds the average (Lightning copies it in), and differs from the raw weights.
    assert_states_equal(model.state_dict(), expected)
    assert not torch.allclose(model.net[1].weight, record.steps[-1]["net.1.weight"])
    # Checkpoints hold the average as state_dict (what `--ckpt_path best` tests) and the raw weights to resume.
    saved = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert_states_equal(saved["state_dict"], expected)
    assert_states_equal(saved["current_model_state"], record.steps[-1])


def test_validation_and_test_use_the_average(tmp_path: Path) -> None:
    ema = EMA(decay=0.5, warmup_power=None)
    trainer, model, record = fit(tmp_path, ema)
    val_x, val_y = tiny_data().val_dataloader().dataset.tensors
    model.eval()
    with torch.no_grad():
        average_loss = nn.functional.cross_entropy(model(val_x), val_y).item()
    assert trainer.callback_metrics["val/loss"].item() == pytest.approx(average_loss, rel=1e-5)
    # Testing the best checkpoint after fit evaluates the averaged weights, not the raw ones it also stores.
    result = trainer.test(model, datamodule=tiny_data(), ckpt_path="best", verbose=False, weights_only=False)[0]
    assert result["test/loss"] == pytest.approx(average_loss, rel=1e-5)
    raw = tiny_model()
    raw.load_state_dict(record.steps[-1])
    with torch.no_grad():
        raw_loss = nn.functional.cross_entropy(raw.eval()(val_x), val_y).item()
    assert abs(raw_loss - average_loss) > 1e-4


def test_swa_is_the_equal_average_of_late_epochs(tmp_path: Path) -> None:
    swa = SWA(start=1)
    _, model, record = fit(tmp_path, swa, epochs=3)
    expected = {k: (v + record.epochs[2][k]) / 2 for k, v in record.epochs[1].items() if v.is_floating_point()}
    assert_states_equal(model.state_dict(), expected)


def test_off_by_default_and_one_average_at_a_time(tmp_path: Path) -> None:
    trainer, model, record = fit(tmp_path, *attached([EMA()]))  # as the CLI attaches callbacks
    assert_states_equal(model.state_dict(), record.steps[-1])
    saved = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert "current_model_state" not in saved
    with pytest.raises(ConfigError, match="keep one of them"):
        Trainer(callbacks=[EMA(decay=0.9), SWA(start=0.5)], logger=False, max_epochs=1).fit(tiny_model(), tiny_data())
    with pytest.raises(ConfigError, match="decay"):
        EMA(decay=1.5)


def test_resume_restores_raw_weights_and_the_average(tmp_path: Path) -> None:
    trainer, _, record = fit(tmp_path, EMA(decay=0.9))
    last = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=False)

    class AtStart(Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            self.raw = {k: v.clone() for k, v in pl_module.state_dict().items()}
            self.average = {k[len("module."):]: v.clone() for k, v in ema._average_model.state_dict().items()
                            if k.startswith("module.")}
            self.num_averaged = int(ema._average_model.n_averaged)

    ema, start = EMA(decay=0.9), AtStart()
    resumed = Trainer(max_epochs=2, callbacks=[ema, start], default_root_dir=tmp_path, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", num_sanity_val_steps=0)
    last_path = trainer.checkpoint_callback.last_model_path
    resumed.fit(tiny_model(), datamodule=tiny_data(), ckpt_path=last_path, weights_only=False)
    assert_states_equal(start.raw, record.steps[-1])  # training goes on from the raw weights
    assert_states_equal(start.average, last["state_dict"])  # and the average from where it was
    assert start.num_averaged == 4  # so the decay warmup continues rather than restarting

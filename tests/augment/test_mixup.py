"""Mixup/CutMix through ClassificationModule: training batches are mixed (with soft targets), val/test never."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import TensorDataset

from trainkit.augment import MixupConfig
from trainkit.errors import ConfigError
from trainkit.tasks import ClassificationModule


class Recorder(nn.Module):
    """A linear classifier that remembers every input batch it sees, by mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 4)
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, x.detach().clone()))
        return self.linear(x.flatten(1))


def run(mixup: MixupConfig, batch_size: int = 6) -> tuple[Recorder, torch.Tensor]:
    x, y = torch.rand(18, 1, 4, 4), torch.arange(18) % 4
    dataset = TensorDataset(x, y)
    data = LightningDataModule.from_datasets(dataset, dataset, dataset, batch_size=batch_size)  # unshuffled
    net = Recorder()
    model = ClassificationModule(backbone=net, num_classes=4, label_smoothing=0.1, mixup=mixup)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)
    # Unshuffled training batches, so each mixed batch can be compared with the samples it came from.
    data.train_dataloader = lambda: torch.utils.data.DataLoader(dataset, batch_size=batch_size)  # type: ignore
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return net, x


def test_mixup_mixes_training_batches_only() -> None:
    net, x = run(MixupConfig(mixup_alpha=1.0, cutmix_alpha=0.0))
    train = [batch for training, batch in net.seen if training]
    evaluated = [batch for training, batch in net.seen if not training]
    assert len(train) == 3 and len(evaluated) == 6  # 3 val + 3 test batches
    for index, mixed in enumerate(train):
        original = x[index * 6 : (index + 1) * 6]
        assert not torch.allclose(mixed, original)
        # timm's batch mode: every sample is lam * itself + (1 - lam) * its mirror, with one lam per batch.
        mirror = original.flip(0)
        lam = ((mixed - mirror) / (original - mirror))[(original - mirror).abs() > 1e-3].median()
        torch.testing.assert_close(mixed, lam * original + (1 - lam) * mirror, atol=1e-5, rtol=1e-4)
    for index, batch in enumerate(evaluated):
        torch.testing.assert_close(batch, x[(index % 3) * 6 : (index % 3 + 1) * 6])


def test_cutmix_pastes_boxes_from_the_mirrored_sample() -> None:
    net, x = run(MixupConfig(mixup_alpha=0.0, cutmix_alpha=1.0))
    mixed = [batch for training, batch in net.seen if training][0]
    original = x[:6]
    from_self, from_mirror = mixed == original, mixed == original.flip(0)
    assert bool((from_self | from_mirror).all())  # every pixel comes from one of the two, none is blended
    assert 0 < from_mirror.float().mean() < 1


def test_odd_batches_keep_their_last_sample_and_targets_are_smoothed() -> None:
    mix = MixupConfig(mixup_alpha=1.0, cutmix_alpha=0.0).build(num_classes=4, label_smoothing=0.1)
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 3, 0])
    mixed_x, soft = mix(x, y)
    torch.testing.assert_close(mixed_x[-1], x[-1])
    torch.testing.assert_close(soft[-1], torch.tensor([0.925, 0.025, 0.025, 0.025]))
    torch.testing.assert_close(soft.sum(1), torch.ones(5))
    assert not torch.allclose(mixed_x[:4], x[:4])


def test_mixup_needs_an_alpha() -> None:
    with pytest.raises(ConfigError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        MixupConfig(mixup_alpha=0.0, cutmix_alpha=0.0).build(num_classes=4, label_smoothing=0.0)

"""The bundled-photograph patches: spatially separate bands, a few labels per class, the weights' normalization."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch

from tests.conftest import tiny_argv
from trainkit.data.photo_patches import SOURCES, PhotoPatchesDataModule, _patches
from trainkit.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "classification" / "finetune_photos.yaml"


def test_patches_stay_inside_their_band() -> None:
    columns = torch.arange(200.0).expand(1, 100, 200)  # each pixel holds its column index
    test = _patches(columns, 32, 16, 0.7, 1.0)
    train = _patches(columns, 32, 16, 0.0, 0.5)
    assert test.min() >= 140 and test.max() < 200
    assert train.max() < 100 and len(train) == 5 * 5


def test_few_labels_per_class_and_bad_counts() -> None:
    data = PhotoPatchesDataModule(labels_per_class=5, image_size=32)
    data.setup("fit")
    assert torch.bincount(data.splits["train"].labels).tolist() == [5] * len(SOURCES)
    assert len(data.splits["test"]) > 10 * len(SOURCES)
    image, _ = data.splits["train"][0]
    assert image.shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="labels_per_class 50 is more than the 48 training patches of chelsea.png"):
        PhotoPatchesDataModule(labels_per_class=50).setup("fit")


def test_the_weights_normalization_unless_the_config_sets_one() -> None:
    data = PhotoPatchesDataModule(image_size=32)
    data.use_pretrained_normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 224)
    assert data.normalize(torch.full((3, 2, 2), 0.75)).eq(1.0).all()
    kept = PhotoPatchesDataModule(image_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    kept.use_pretrained_normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 224)
    assert kept.normalize(torch.full((3, 2, 2), 0.75)).eq(0.75).all()


@pytest.mark.slow
def test_fit_applies_and_prints_the_weights_normalization(workdir: Path, trainkit, caplog) -> None:  # noqa: ANN001
    torch.save(timm.create_model("test_efficientnet").state_dict(), workdir / "w.pth")
    argv = tiny_argv(CONFIG, "--model.init_args.backbone", "test_efficientnet", "--model.init_args.pretrained",
                     workdir / "w.pth", "--model.init_args.pretrained_remap", "name", "--data.init_args.image_size",
                     "32", "--data.init_args.labels_per_class", "2", limit_val_batches=1, limit_test_batches=1)
    with caplog.at_level(logging.INFO):
        assert trainkit("fit", *argv) == 0
    said = [r.getMessage() for r in caplog.records if "normalized as the pretrained weights" in r.getMessage()]
    assert len(said) == 1 and "mean (0.485, 0.456, 0.406)" in said[0]  # test_efficientnet's timm config: ImageNet's

"""Class-per-folder images: classes from folder names, splits held out by class, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from trainkit.data import ImageFolderDataModule
from trainkit.errors import ConfigError


def _make_images(root: Path, per_class: int) -> None:
    for index, color in enumerate(["red", "green", "blue"]):
        folder = root / ["cat", "dog", "fox"][index]
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20 + i, 24), color).save(folder / f"{i}.png")


def test_one_folder_is_split_by_fractions(tmp_path: Path) -> None:
    _make_images(tmp_path, per_class=10)
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, batch_size=4, val_fraction=0.2, test_fraction=0.2,
                               num_workers=0)
    dm.setup()
    assert dm.classes == ["cat", "dog", "fox"] and dm.num_classes == 3
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16)
    reds = [x_i for x_i, y_i in zip(*next(iter(dm.test_dataloader())), strict=True) if y_i == 0]
    assert all(r[0].mean() > r[1].mean() for r in reds), "the red class reads red after normalisation"


def test_train_val_folders_and_grayscale(tmp_path: Path) -> None:
    _make_images(tmp_path / "train", per_class=4)
    _make_images(tmp_path / "val", per_class=2)
    dm = ImageFolderDataModule(str(tmp_path), image_size=8, grayscale=True, test_fraction=0.25, num_workers=0)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [9, 6, 3]
    image, _ = dm.splits["val"][0]
    assert image.shape == (1, 8, 8) and dm.in_chans == 1
    assert torch.isfinite(image).all()


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ImageFolderDataModule(str(tmp_path / "nope")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no class folders"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()


def test_a_corrupt_image_is_named_in_one_line_even_from_a_loader_worker(tmp_path: Path) -> None:
    from trainkit.console import one_line

    _make_images(tmp_path, per_class=2)
    broken = tmp_path / "dog" / "1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # cut short: a copy that never finished
    dataset = ImageFolderDataModule(str(tmp_path), image_size=16, num_workers=0)._folder(tmp_path, None)
    index = next(i for i, (path, _) in enumerate(dataset.samples) if path == str(broken))
    with pytest.raises(ConfigError, match=rf"^image {broken} cannot be read \(\w+Error: .*\); remove or replace it"):
        dataset[index]
    loader = torch.utils.data.DataLoader(dataset, batch_size=6, num_workers=1, collate_fn=list)
    with pytest.raises(ConfigError) as caught:
        next(iter(loader))
    assert one_line(caught.value).startswith(f"image {broken} cannot be read (")
    assert "\n" not in one_line(caught.value)

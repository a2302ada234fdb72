"""images/ + masks/ folders: pairing by name, resizing, and one-line errors for unpaired or mis-sized files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainkit.data import MaskFolderDataModule
from trainkit.errors import ConfigError


def _make(root: Path, names: list[str], size: tuple[int, int] = (20, 16), mask_size: tuple[int, int] | None = None,
          mask_value: int = 2) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        w, h = size
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
        mw, mh = mask_size or size
        mask = np.zeros((mh, mw), dtype=np.uint8)
        mask[: mh // 2] = mask_value
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def test_pairs_load_and_resize(tmp_path: Path) -> None:
    root = _make(tmp_path, [f"img{i}" for i in range(10)])
    data = MaskFolderDataModule(str(root), num_classes=3, image_size=8, batch_size=4, num_workers=0)
    data.setup()
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    images, masks = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 8, 8) and masks.shape == (4, 8, 8) and masks.dtype == torch.long
    assert set(masks.unique().tolist()) == {0, 2}  # nearest-neighbour resize keeps class ids
    assert torch.equal(masks[0, :4], torch.full((4, 8), 2))


def test_unpaired_files_are_named(tmp_path: Path) -> None:
    root = _make(tmp_path, ["a", "b", "c"])
    (root / "masks" / "b.png").unlink()
    Image.fromarray(np.zeros((16, 20), dtype=np.uint8)).save(root / "masks" / "zzz.png")
    with pytest.raises(ConfigError) as error:
        MaskFolderDataModule(str(root), num_classes=3).setup()
    message = str(error.value)
    assert "b.jpg" in message and "zzz.png" in message and "\n" not in message


def test_mis_sized_pair_is_named(tmp_path: Path) -> None:
    root = _make(tmp_path, ["ok"])
    _make(root, ["bad"], size=(20, 16), mask_size=(10, 8))
    with pytest.raises(ConfigError, match=r"image 'bad.jpg' is 20x16 but mask 'bad.png' is 10x8"):
        MaskFolderDataModule(str(root), num_classes=3).setup()


def test_differing_sizes_need_image_size(tmp_path: Path) -> None:
    root = _make(tmp_path, ["a", "b"])
    _make(root, ["c"], size=(30, 30))
    with pytest.raises(ConfigError, match="image_size"):
        MaskFolderDataModule(str(root), num_classes=3).setup()


def test_mask_value_beyond_num_classes(tmp_path: Path) -> None:
    root = _make(tmp_path, ["a", "b", "c"], mask_value=7)
    data = MaskFolderDataModule(str(root), num_classes=3, val_fraction=0, test_fraction=0, num_workers=0)
    data.setup()
    with pytest.raises(ConfigError, match="holds value 7 but num_classes is 3"):
        data.splits["train"][0]
    ignoring = MaskFolderDataModule(str(root), num_classes=3, ignore_index=7, val_fraction=0, test_fraction=0)
    ignoring.setup()
    assert ignoring.splits["train"][0][1].max() == 7


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="images"):
        MaskFolderDataModule(str(tmp_path), num_classes=2).setup()

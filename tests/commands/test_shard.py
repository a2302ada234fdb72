"""`trainkit shard`: any DataModule's splits as WebDataset tar shards with a manifest; bad inputs in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import DIGITS_CONFIG
from tests.data._streams import write_pattern_folder
from trainkit.commands.shard import shard_datamodule
from trainkit.data import ImageFolderDataModule, ShapesDataModule, StreamingDataModule
from trainkit.data.shards import sha256
from trainkit.errors import ConfigError


def test_shard_command_writes_the_digits_splits_with_a_manifest(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    out = workdir / "shards"
    assert trainkit("shard", "--config", DIGITS_CONFIG, "--data.init_args.image_size", "8", "--out", out,
                    "--shard_size_mb", "0.1") == 0
    printed = capsys.readouterr().out
    assert "wrote 1259 train samples" in printed and "wrote 359 test samples" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["attributes"] == {"num_classes": 10, "in_chans": 1, "class_names": [str(d) for d in range(10)]}
    assert {name: split["samples"] for name, split in manifest["splits"].items()} == {
        "train": 1259, "val": 179, "test": 359}
    train = manifest["splits"]["train"]
    assert len(train["shards"]) > 1 and sum(s["samples"] for s in train["shards"]) == 1259
    assert all(sha256(out / s["name"]) == s["sha256"] for s in train["shards"])
    assert train["layout"]["fields"] == [["0", "pth"], ["1", "cls"]]

    # WebDataset itself reads the shards: the format is the widely used one, not a private one.
    import webdataset as wds

    first = next(iter(wds.WebDataset(str(out / train["shards"][0]["name"]), shardshuffle=False).decode()))
    assert first["0.pth"].shape == (1, 8, 8) and 0 <= first["1.cls"] < 10


def test_image_files_are_stored_as_their_own_bytes(tmp_path: Path) -> None:
    root = write_pattern_folder(tmp_path / "patterns", per_class=5)
    data = ImageFolderDataModule(str(root), image_size=16, grayscale=True, val_fraction=0.2, test_fraction=0.2,
                                 num_workers=0)
    manifest = shard_datamodule(data, tmp_path / "shards")
    assert manifest["attributes"]["class_names"] == ["blob", "diagonal", "horizontal", "vertical"]
    assert manifest["image"] == {"image_size": 16, "grayscale": True, "mean": pytest.approx([0.449]),
                                 "std": pytest.approx([0.226])}
    import tarfile

    with tarfile.open(tmp_path / "shards" / "test-000000.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".png"))
        stored = tar.extractfile(member).read()
    files = {path.read_bytes() for path in root.rglob("*.png")}
    assert stored in files


def test_segmentation_pairs_stream_back_with_their_masks(tmp_path: Path) -> None:
    data = ShapesDataModule(num_train=6, num_val=2, num_test=3, image_size=16)
    shard_datamodule(data, tmp_path / "shards", split="test")
    streamed = StreamingDataModule(str(tmp_path / "shards"), batch_size=2, num_workers=0)
    streamed.setup("test")
    images, masks = (torch.cat(part) for part in zip(*streamed.test_dataloader(), strict=True))
    assert streamed.manifest["splits"]["test"]["layout"]["paired"]
    assert torch.equal(images, torch.stack([data.splits["test"][i][0] for i in range(3)]))
    assert torch.equal(masks, torch.stack([data.splits["test"][i][1] for i in range(3)]))
    assert streamed.num_classes == 4


def test_an_empty_split_fails_in_one_line(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    code = trainkit("shard", "--config", DIGITS_CONFIG, "--data.init_args.test_fraction", "0", "--split", "test",
                    "--out", workdir / "shards")
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("trainkit: error: the test split of DigitsDataModule is empty")


def test_an_out_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    from trainkit.data import DigitsDataModule

    (tmp_path / "file").write_text("mine")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"--out .*/file is a file, not a folder; pass a new or empty folder"):
        shard_datamodule(DigitsDataModule(), tmp_path / "file")
    with pytest.raises(ConfigError, match=r"--out .*/folder already holds files and is not a shard folder"):
        shard_datamodule(DigitsDataModule(), tmp_path / "folder")
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["notes.txt"]

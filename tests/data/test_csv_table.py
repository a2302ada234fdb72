"""CSV tables: columns named in YAML, one-line errors for a missing column or a value that is not a number."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainkit.data import CSVDataModule, DiabetesDataModule
from trainkit.errors import ConfigError


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["x1,x2,target", *rows]) + "\n")
    return path


def test_reads_and_splits(tmp_path: Path) -> None:
    rows = [f"{i},{i * 2},{i * 3 + 1}" for i in range(20)]
    data = CSVDataModule(str(_table(tmp_path / "t.csv", rows)), target_columns=["target"], val_fraction=0.1,
                         test_fraction=0.2, standardize_features=False)
    assert data.in_features == 2 and data.num_outputs == 1 and data.feature_names == ["x1", "x2"]
    data.setup()
    sizes = {name: len(data.split_arrays(name)[0]) for name in ("train", "val", "test")}
    assert sizes == {"train": 14, "val": 2, "test": 4}
    x, y = data.split_arrays("train")
    assert torch.equal(y[:, 0], x[:, 0] * 3 + 1)  # rows stay whole through the split


def test_missing_column(tmp_path: Path) -> None:
    path = _table(tmp_path / "t.csv", ["1,2,3"] * 5)
    with pytest.raises(ConfigError, match=r"column 'price' is not in .*; its columns are: x1, x2, target"):
        CSVDataModule(str(path), target_columns=["price"])
    with pytest.raises(ConfigError, match="'x3'"):
        CSVDataModule(str(path), target_columns=["target"], feature_columns=["x1", "x3"])


@pytest.mark.parametrize(("bad", "shown"), [("abc", "'abc' is not a number"), ("", "an empty value is not a number")])
def test_non_numeric_value(tmp_path: Path, bad: str, shown: str) -> None:
    path = _table(tmp_path / "t.csv", ["1,2,3", "4,5,6", f"7,{bad},9", "1,1,1"])
    data = CSVDataModule(str(path), target_columns=["target"])
    with pytest.raises(ConfigError, match=rf"line 4, column 'x2': {shown}"):
        data.setup()


def test_missing_file(tmp_path: Path) -> None:
    data = CSVDataModule(str(tmp_path / "nope.csv"), target_columns=["y"])  # predict --source needs no training file
    with pytest.raises(ConfigError, match="does not exist"):
        data.setup()


def test_diabetes_is_the_real_table() -> None:
    data = DiabetesDataModule(standardize_features=False)
    data.setup()
    sizes = [len(data.split_arrays(name)[1]) for name in ("train", "val", "test")]
    assert sum(sizes) == 442 and data.in_features == 10
    all_targets = torch.cat([data.split_arrays(name)[1] for name in ("train", "val", "test")])
    assert all_targets.min().item() == 25 and all_targets.max().item() == 346

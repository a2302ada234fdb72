"""A CSV table for regression or classification: feature and target columns named in YAML, every value checked."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from trainkit.data._tabular import TabularDataModule, as_columns
from trainkit.errors import ConfigError


class CSVDataModule(TabularDataModule):
    """Rows of a CSV file with a header; `target_columns` are predicted from `feature_columns` (default: the rest).

    `task` says what the targets are: numbers (regression), one class label per row (classification: string or
    integer values, whose sorted distinct values are the class names; splits are stratified), or several labels per
    row (multilabel: several 0/1 columns, or one column of labels joined by `label_delimiter`).
    """

    def __init__(
        self,
        path: str,
        target_columns: list[str],
        feature_columns: list[str] | None = None,
        task: Literal["regression", "classification", "multilabel"] = "regression",
        label_delimiter: str | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        standardize_features: bool = True,
        delimiter: str = ",",
    ) -> None:
        """Args:
        path: the CSV file; its first line names the columns.
        target_columns: columns to predict (one or more; one for classification).
        feature_columns: input columns; default every column that is not a target.
        task: regression (numeric targets), classification (one label column), or multilabel.
        label_delimiter: multilabel from one column whose labels are joined by this (e.g. `;`).
        batch_size: rows per batch.
        val_fraction: share of rows held out for validation.
        test_fraction: share of rows held out for test.
        split_seed: seed of the split.
        standardize_features: scale each feature to zero mean, unit std on the training rows.
        delimiter: field separator (`;` for many European exports, `\\t` for TSV).
        """
        super().__init__(batch_size, val_fraction, test_fraction, split_seed, standardize_features)
        self.save_hyperparameters()
        self.path, self.delimiter = Path(path), delimiter
        self.task, self.label_delimiter = task, label_delimiter
        if not target_columns:
            raise ConfigError(f"no target column given for '{path}'; set --data.init_args.target_columns [name]")
        self.target_names = list(target_columns)
        self.feature_names = list(feature_columns or [])
        if self.path.is_file():  # else `setup` says so: `predict --source` needs only the checkpoint's statistics
            self._read_columns()
        one_column = task == "classification" or (task == "multilabel" and label_delimiter is not None)
        if one_column and len(self.target_names) != 1:
            raise ConfigError(f"task={task} reads labels from one column, not {len(self.target_names)}; set "
                              "--data.init_args.target_columns [label] (or task multilabel with several 0/1 columns)")
        self.class_names: list[str] | None = None
        """Classification: the sorted distinct label values; multilabel: the labels (set by `setup`)."""
        if task == "multilabel" and label_delimiter is None:
            self.class_names = list(self.target_names)

    @property
    def num_classes(self) -> int | None:
        """Classes (classification) or labels (multilabel) once known; None for regression."""
        return len(self.class_names) if self.class_names is not None else None

    def _read_columns(self) -> None:
        header = self._header()
        missing = [name for name in self.target_names + self.feature_names if name not in header]
        if missing:
            raise ConfigError(f"column {', '.join(repr(m) for m in missing)} is not in '{self.path}'; its columns are: "
                              f"{', '.join(header)}")
        self.feature_names = self.feature_names or [c for c in header if c not in self.target_names]
        if not self.feature_names:
            raise ConfigError(f"'{self.path}' has no feature column besides the targets; add columns or set "
                              "feature_columns")

    def state_dict(self) -> dict[str, Any]:
        """The feature statistics and columns, saved in checkpoints: predicting new rows needs no training data."""
        return super().state_dict() | {"feature_names": self.feature_names}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.feature_names = state_dict.get("feature_names") or self.feature_names

    def _header(self) -> list[str]:
        if not self.path.is_file():
            raise ConfigError(f"CSV file '{self.path}' does not exist; set --data.init_args.path to a CSV file")
        with self.path.open(newline="") as file:
            header = next(csv.reader(file, delimiter=self.delimiter), None)
        if not header:
            raise ConfigError(f"CSV file '{self.path}' is empty; it needs a header line naming the columns")
        return [name.strip() for name in header]

    def _rows(self, path: Path) -> list[tuple[int, dict[str, str | None]]]:
        with path.open(newline="") as file:
            reader = csv.DictReader(file, delimiter=self.delimiter)
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            return list(enumerate(reader, start=2))

    def load(self) -> tuple[Tensor, Tensor]:
        self._read_columns()
        rows = self._rows(self.path)
        features = [[self._number(row, name, line) for name in self.feature_names] for line, row in rows]
        if len(features) < 3:
            raise ConfigError(f"'{self.path}' has {len(features)} data rows; train, val and test need at least 3")
        if self.task == "regression":
            return as_columns(features), as_columns([[self._number(r, n, line) for n in self.target_names]
                                                     for line, r in rows])
        if self.task == "multilabel" and self.label_delimiter is None:
            targets = [[self._number(r, n, line) for n in self.target_names] for line, r in rows]
            if any(value not in (0.0, 1.0) for row in targets for value in row):
                raise ConfigError(f"multilabel columns of '{self.path}' must hold 0 or 1; or name one label column "
                                  "and set --data.init_args.label_delimiter")
            return as_columns(features), torch.tensor(targets, dtype=torch.float32)
        labels = [self._label(row, line) for line, row in rows]
        if self.task == "multilabel":
            sets = [{x.strip() for x in label.split(self.label_delimiter) if x.strip()} for label in labels]
            self.class_names = sorted(set().union(*sets))
            targets = torch.tensor([[float(name in s) for name in self.class_names] for s in sets])
            return as_columns(features), targets
        values = sorted(set(labels), key=lambda v: (0, int(v), "") if _is_int(v) else (1, 0, v))
        self.class_names = values
        index = {value: i for i, value in enumerate(values)}
        return as_columns(features), torch.tensor([index[label] for label in labels], dtype=torch.long)

    def source_dataset(self, source: str, skip_unreadable: bool) -> tuple[Dataset, list[str]]:
        """The rows of a CSV with the feature columns (the target may be absent), keyed by row number (1 = first
        data row); a row with a bad value is named, then skipped or the run stops."""
        from trainkit.data.sources import unreadable

        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"--source {source} is not a file; pass a CSV with the columns "
                              f"{', '.join(self.feature_names)}")
        rows = self._rows(path)
        missing = [name for name in self.feature_names if rows and name not in rows[0][1]]
        if not rows or missing:
            raise ConfigError(f"--source {source} lacks feature column(s) {', '.join(missing) or '(no rows)'}; it "
                              f"needs {', '.join(self.feature_names)}")
        features, keys = [], []
        for line, row in rows:
            try:
                features.append([self._number(row, name, line, path) for name in self.feature_names])
                keys.append(str(line - 1))
            except ConfigError as error:
                reason = str(error).split(", ", 1)[-1].split(";")[0]  # "column 'x': 'abc' is not a number"
                unreadable(f"row {line - 1} of '{path}'", reason, skip_unreadable)
        if not features:
            raise ConfigError(f"no row of --source {source} could be read; check its values")
        return TensorDataset(self.scaled(as_columns(features))), keys

    def _label(self, row: dict[str, str | None], line: int) -> str:
        text = (row.get(self.target_names[0]) or "").strip()
        if not text and self.task == "classification":
            raise ConfigError(f"'{self.path}' line {line}, column '{self.target_names[0]}' has no label; fill or drop "
                              "that row")
        return text

    def _number(self, row: dict[str, str | None], name: str, line: int, path: Path | None = None) -> float:
        path = path or self.path
        text = (row.get(name) or "").strip()
        try:
            value = float(text)
        except ValueError:
            shown = f"'{text}'" if text else "an empty value"
            hint = "; set --data.init_args.task classification" if name in self.target_names else ""
            raise ConfigError(
                f"'{path}' line {line}, column '{name}': {shown} is not a number{hint}; fix or drop that row, "
                "or leave the column out of feature_columns"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"'{path}' line {line}, column '{name}' is {text}; fix or drop that row")
        return value


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True

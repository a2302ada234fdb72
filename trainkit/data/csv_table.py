"""A CSV table for regression: feature and target columns named in YAML, every value checked to be a number."""

from __future__ import annotations

import csv
from pathlib import Path

from torch import Tensor

from trainkit.data._tabular import TabularDataModule, as_columns
from trainkit.errors import ConfigError


class CSVDataModule(TabularDataModule):
    """Rows of a CSV file with a header; `target_columns` are predicted from `feature_columns` (default: the rest)."""

    def __init__(
        self,
        path: str,
        target_columns: list[str],
        feature_columns: list[str] | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        standardize_features: bool = True,
        delimiter: str = ",",
    ) -> None:
        """Args:
        path: the CSV file; its first line names the columns.
        target_columns: columns to predict (one or more).
        feature_columns: input columns; default every column that is not a target.
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
        header = self._header()
        if not target_columns:
            raise ConfigError(f"no target column given for '{path}'; set --data.init_args.target_columns [name]")
        chosen = list(target_columns) + list(feature_columns or [])
        missing = [name for name in chosen if name not in header]
        if missing:
            raise ConfigError(
                f"column {', '.join(repr(m) for m in missing)} is not in '{path}'; its columns are: {', '.join(header)}"
            )
        self.target_names = list(target_columns)
        self.feature_names = list(feature_columns or [c for c in header if c not in target_columns])
        if not self.feature_names:
            raise ConfigError(f"'{path}' has no feature column besides the targets; add columns or set feature_columns")

    def _header(self) -> list[str]:
        if not self.path.is_file():
            raise ConfigError(f"CSV file '{self.path}' does not exist; set --data.init_args.path to a CSV file")
        with self.path.open(newline="") as file:
            header = next(csv.reader(file, delimiter=self.delimiter), None)
        if not header:
            raise ConfigError(f"CSV file '{self.path}' is empty; it needs a header line naming the columns")
        return [name.strip() for name in header]

    def load(self) -> tuple[Tensor, Tensor]:
        features: list[list[float]] = []
        targets: list[list[float]] = []
        with self.path.open(newline="") as file:
            reader = csv.DictReader(file, delimiter=self.delimiter)
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            for line, row in enumerate(reader, start=2):
                features.append([self._number(row, name, line) for name in self.feature_names])
                targets.append([self._number(row, name, line) for name in self.target_names])
        if len(features) < 3:
            raise ConfigError(f"'{self.path}' has {len(features)} data rows; train, val and test need at least 3")
        return as_columns(features), as_columns(targets)

    def _number(self, row: dict[str, str | None], name: str, line: int) -> float:
        text = (row.get(name) or "").strip()
        try:
            value = float(text)
        except ValueError:
            shown = f"'{text}'" if text else "an empty value"
            raise ConfigError(
                f"'{self.path}' line {line}, column '{name}': {shown} is not a number; fix or drop that row, "
                "or leave the column out of feature_columns"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"'{self.path}' line {line}, column '{name}' is {text}; fix or drop that row")
        return value

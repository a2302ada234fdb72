"""scikit-learn's bundled diabetes data (442 real patients, 10 features, disease progression after a year)."""

from __future__ import annotations

from torch import Tensor

from trainkit.data._tabular import TabularDataModule, as_columns


class DiabetesDataModule(TabularDataModule):
    """Regress one-year disease progression (25 to 346) from age, sex, BMI, blood pressure and six serum values."""

    def __init__(
        self,
        batch_size: int = 32,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        standardize_features: bool = True,
    ) -> None:
        """Args:
        batch_size: rows per batch.
        val_fraction: share of rows held out for validation.
        test_fraction: share of rows held out for test.
        split_seed: seed of the split (independent of the training seed).
        standardize_features: scale each feature to zero mean, unit std on the training rows.
        """
        super().__init__(batch_size, val_fraction, test_fraction, split_seed, standardize_features)
        self.save_hyperparameters()
        self.feature_names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        self.target_names = ["progression"]

    def load(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_diabetes

        data = load_diabetes()
        return as_columns(data.data), as_columns(data.target)

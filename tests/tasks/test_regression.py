"""RegressionModule: Huber against its formula, target standardisation, image backbones, and `trainkit fit`/`test`
on the diabetes table and the generated shape geometry."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tests.conftest import DOCTOR_OFF, REPO, tiny_argv
from tests.metrics_csv import last_values
from trainkit.data import CSVDataModule, ShapeGeometryDataModule
from trainkit.errors import ConfigError
from trainkit.tasks import RegressionModule

DIABETES = REPO / "configs" / "regression" / "diabetes.yaml"
TINY_DIABETES = tiny_argv(DIABETES, epochs=3)
SHAPE_GEOMETRY = REPO / "configs" / "regression" / "shape_geometry.yaml"
# timm's tiny test_resnet on 16 px images; 1600 training images keep least squares on the 768 pixels well-posed.
TINY_GEOMETRY = {"num_train": 1600, "num_val": 32, "num_test": 64, "image_size": 16}
TINY_SHAPE_GEOMETRY = tiny_argv(
    SHAPE_GEOMETRY, "--model.init_args.backbone", "test_resnet",
    *[arg for key, value in TINY_GEOMETRY.items() for arg in (f"--data.init_args.{key}", str(value))],
    "--data.init_args.batch_size", "32", epochs=2, limit_train_batches=4, log_every_n_steps=2,
)


class FirstColumns(nn.Module):
    """A 'network' returning its first k inputs, so the loss can be worked out by hand."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x[:, : self.k] + self.dummy


def _huber(residual: Tensor, delta: float) -> float:
    """Huber by its definition: r^2/2 inside delta, delta * (|r| - delta/2) outside; mean over all values."""
    r = residual.abs()
    return torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean().item()


@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0, 3.0])
def test_huber_loss_in_standardised_units(delta: float) -> None:
    model = RegressionModule(FirstColumns(2), num_outputs=2, loss=nn.HuberLoss(delta=delta))
    model.target_mean.copy_(torch.tensor([10.0, -5.0]))
    model.target_std.copy_(torch.tensor([2.0, 0.5]))
    x = torch.tensor([[0.1, 2.0], [-3.0, 0.4], [1.5, -0.2]])
    y = torch.tensor([[10.4, -5.1], [13.0, -4.0], [6.0, -5.0]])
    loss, preds, target = model.step((x, y), "train")
    scaled_target = (y - model.target_mean) / model.target_std
    assert loss.item() == pytest.approx(_huber(x - scaled_target, delta), rel=1e-6)
    assert loss.item() == pytest.approx(nn.functional.huber_loss(x, scaled_target, delta=delta).item(), rel=1e-6)
    # Predictions for the metrics are back in the data's units.
    assert torch.allclose(preds, x * model.target_std + model.target_mean)
    assert torch.equal(target, y)


def test_mlp_needs_in_features() -> None:
    with pytest.raises(ConfigError, match="in_features"):
        RegressionModule("mlp")


def _write_csv(path: Path, rows: int = 120, seed: int = 0) -> Path:
    """y = 1000 + 50 sin(3 a) b + noise: far from zero mean and unit scale, and not linear."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, rows), rng.uniform(-1, 1, rows)
    y = 1000 + 50 * np.sin(3 * a) * b + rng.normal(0, 1, rows)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["a", "b", "noise_col", "y"])
        writer.writerows(zip(a, b, rng.normal(size=rows), y, strict=True))
    return path


def test_target_standardisation_fits_on_train_and_inverts(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer

    data = CSVDataModule(str(_write_csv(tmp_path / "t.csv")), target_columns=["y"], feature_columns=["a", "b"],
                         batch_size=16)
    model = RegressionModule("mlp", in_features=2, hidden_sizes=[32])
    trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(model, data)
    train_y = data.split_arrays("train")[1]
    assert model.target_mean.item() == pytest.approx(train_y.mean().item(), rel=1e-6)
    assert model.target_std.item() == pytest.approx(train_y.std().item(), rel=1e-5)
    with torch.no_grad():
        preds = model(data.split_arrays("test")[0])
    assert abs(preds.mean().item() - 1000) < 30  # forward answers in the data's units, not standardised ones
    metrics = trainer.validate(model, data, verbose=False)[0]
    assert metrics["val/mae"] < 60  # MAE in the target's units (a standardised MAE would be below ~2)


def test_image_backbone_learns() -> None:
    """A timm backbone regressing two values from images: real steps must cut the loss."""
    torch.manual_seed(0)
    images = torch.rand(32, 1, 16, 16)
    targets = torch.stack([images.mean(dim=(1, 2, 3)), images[:, :, :8].mean(dim=(1, 2, 3))], dim=1) * 100
    model = RegressionModule("test_resnet", num_outputs=2, in_chans=1, loss=nn.MSELoss())
    model.target_mean.copy_(targets.mean(0))
    model.target_std.copy_(targets.std(0))
    assert model(images).shape == (32, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _, _ = model.step((images, targets), "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]



def _lstsq_test_r2(data: Any) -> float:
    """Test R2 of least squares with an intercept column, by numpy in float64, averaged over the outputs."""
    (x_train, y_train), (x_test, y_test) = data.split_arrays("train"), data.split_arrays("test")
    design = np.hstack([x_train.numpy().astype(np.float64), np.ones((len(x_train), 1))])
    coef = np.linalg.lstsq(design, y_train.numpy().astype(np.float64), rcond=None)[0]
    pred = np.hstack([x_test.numpy().astype(np.float64), np.ones((len(x_test), 1))]) @ coef
    y = y_test.numpy()
    return float(np.mean(1 - ((y - pred) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)))


def _fit_then_test(trainkit, workdir: Path, args: list[str], experiment: str, data: Any) -> dict[str, str]:  # noqa: ANN001
    """`trainkit fit` then `test --ckpt_path best`: the logged baseline matches numpy's least squares on `data`'s
    split, and the test reproduces the fit's test/r2. Returns the fit's last logged values."""
    assert trainkit("fit", *args, "--test_after_fit", "true") == 0
    run = workdir / "runs" / experiment / "version_0"
    fitted = last_values(run / "metrics.csv")
    for key in ("val/mae", "val/rmse", "val/r2", "test/mae", "test/r2", "test/baseline_r2"):
        assert key in fitted, key
    data.setup()
    assert float(fitted["test/baseline_r2"]) == pytest.approx(_lstsq_test_r2(data), abs=1e-4)

    assert trainkit("test", *args, "--ckpt_path", "best") == 0
    tested = last_values(run / "test" / "version_0" / "metrics.csv")
    assert float(tested["test/r2"]) == pytest.approx(float(fitted["test/r2"]), abs=1e-5)
    return fitted


@pytest.mark.slow
def test_cli_fit_then_test_with_baseline(workdir: Path, trainkit) -> None:  # noqa: ANN001
    from trainkit.data import DiabetesDataModule

    fitted = _fit_then_test(trainkit, workdir, TINY_DIABETES, "diabetes", DiabetesDataModule())
    assert 20 < float(fitted["test/mae"]) < 150  # progression runs 25..346: MAE is in those units


@pytest.mark.slow
def test_cli_image_regression_fit_then_test(workdir: Path, trainkit) -> None:  # noqa: ANN001
    """The shape-geometry config end to end: a timm backbone on images, 3 outputs, the pixel least-squares baseline."""
    data = ShapeGeometryDataModule(**TINY_GEOMETRY)
    fitted = _fit_then_test(trainkit, workdir, TINY_SHAPE_GEOMETRY, "shape_geometry", data)
    assert 0 < float(fitted["test/mae"]) < 0.3  # targets are fractions of the image: MAE is in those units
    # One R2 per named target beside their average (torchmetrics' uniform average is their plain mean).
    per_target = [float(fitted[f"test/r2_{name}"]) for name in ("area", "centroid_x", "centroid_y")]
    assert sum(per_target) / 3 == pytest.approx(float(fitted["test/r2"]), abs=1e-5)
    assert "val/r2_area" in fitted


@pytest.mark.slow
def test_cli_csv_fit(workdir: Path, trainkit) -> None:  # noqa: ANN001
    path = _write_csv(workdir / "table.csv")
    args = [
        "fit", "--model", "RegressionModule", "--model.in_features", "2", "--model.hidden_sizes", "[16]",
        "--data", "CSVDataModule", "--data.path", str(path), "--data.target_columns", "[y]",
        "--data.feature_columns", "[a, b]", "--data.batch_size", "32", "--trainer.max_epochs", "2",
        "--monitor", "val/r2", "--mode", "max", "--test_after_fit", "true", "--experiment", "csv",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *DOCTOR_OFF,
    ]
    assert trainkit(*args) == 0
    assert "test/r2" in last_values(workdir / "runs" / "csv" / "version_0" / "metrics.csv")


@pytest.mark.slow
def test_cli_missing_column_and_mismatch_are_one_line(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    path = _write_csv(workdir / "table.csv")
    base = ["fit", "--model", "RegressionModule", "--data", "CSVDataModule", "--data.path", str(path),
            "--trainer.max_epochs", "1"]
    assert trainkit(*base, "--model.in_features", "2", "--data.target_columns", "[price]") == 2
    error = capsys.readouterr().err.strip()
    assert "'price'" in error and "a, b, noise_col, y" in error and len(error.splitlines()) == 1
    assert trainkit(*base, "--model.in_features", "2", "--data.target_columns", "[y]") == 2  # 3 feature columns
    error = capsys.readouterr().err.strip()
    assert "in_features=2" in error and "--model.in_features 3" in error and len(error.splitlines()) == 1

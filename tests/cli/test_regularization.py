"""End to end: the regularized digits config and the regularization flags through the real `trainkit` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY_DIGITS
from tests.metrics_csv import read_rows

REGULARIZED = REPO / "configs" / "classification" / "digits_regularized.yaml"
TINY_REGULARIZED = [str(REGULARIZED) if arg.endswith("digits.yaml") else arg for arg in TINY_DIGITS]


@pytest.mark.slow
def test_regularized_digits_with_every_option(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    code = trainkit(
        "fit", *TINY_REGULARIZED,
        "--model.init_args.loss", "trainkit.losses.FocalLoss",
        "--model.init_args.loss.gamma", "1.0",
        "--model.init_args.class_weights", "balanced",
        "--model.init_args.mixup", '{"mixup_alpha": 0.4, "cutmix_alpha": 1.0}',
        "--model.init_args.drop_path_rate", "0.1",
        "--elastic_net.l1", "1e-6", "--test_after_fit", "true",
    )
    assert code == 0
    run = workdir / "runs" / "digits_regularized" / "version_0"
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert "current_model_state" in best  # the EMA weights are the state_dict; the raw ones are kept to resume
    assert best["hyper_parameters"]["mixup"]["mixup_alpha"] == 0.4
    rows = read_rows(run / "metrics.csv")
    assert any(row.get("train/penalty_epoch") for row in rows)
    test_acc = [float(row["test/acc"]) for row in rows if row.get("test/acc")]
    assert len(test_acc) == 1 and 0.0 <= test_acc[0] <= 1.0
    capsys.readouterr()
    assert trainkit("test", *TINY_REGULARIZED, "--ckpt_path", "best") == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--ema.decay", "1.5", "ema.decay=1.5 must be in (0, 1)"),
        ("--data.init_args.train_transform.init_args.hflip", "2", "hflip=2.0 is not a probability"),
    ],
)
def test_bad_regularization_values_are_one_line_errors(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture, flag: str, value: str, message: str
) -> None:
    assert trainkit("fit", *TINY_REGULARIZED, flag, value) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (workdir / "runs").exists() or not any((workdir / "runs").rglob("*.ckpt"))

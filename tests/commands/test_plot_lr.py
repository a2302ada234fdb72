"""`trainkit plot-lr`: the schedule of a config over its whole run, without training, from the Trainer's numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import DIGITS_CONFIG


def read(path: Path) -> list[float]:
    with path.open() as file:
        return [float(row["lr_group0"]) for row in csv.DictReader(file)]


def test_digits_onecycle(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    assert trainkit("plot-lr", "--config", str(DIGITS_CONFIG)) == 0
    assert "600 steps" in capsys.readouterr().out  # 30 epochs x ceil(1258 train images / 64)
    lrs = read(workdir / "runs/digits/lr_schedule.csv")
    assert len(lrs) == 600
    assert max(lrs) == pytest.approx(0.003) and lrs.index(max(lrs)) == 179  # torch's pct_start 0.3: step 0.3 * 600 - 1
    assert lrs[0] == pytest.approx(0.003 / 25) and lrs[-1] == pytest.approx(0.003 / 25 / 1e4, rel=1e-3)
    assert (workdir / "runs/digits/lr_schedule.png").read_bytes()[:4] == b"\x89PNG"
    assert not (workdir / "runs/digits/version_0").exists()


def test_length_counts_accumulation_and_devices(workdir: Path, trainkit) -> None:  # noqa: ANN001
    flags = ["--config", str(DIGITS_CONFIG), "--model.init_args.scheduler.name", "warmup_cosine",
             "--model.init_args.scheduler.warmup", "10", "--trainer.max_epochs", "3"]
    assert trainkit("plot-lr", *flags, "--trainer.accumulate_grad_batches", "2", "--out", "accumulated.png") == 0
    lrs = read(workdir / "accumulated.csv")
    assert len(lrs) == 30  # 3 epochs x 20 batches / 2
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(0.003) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    assert trainkit("plot-lr", *flags, *ddp, "--out", "ddp.png") == 0
    assert len(read(workdir / "ddp.csv")) == 30  # each of 2 processes sees half the batches


def test_param_groups_and_epoch_interval(workdir: Path, trainkit) -> None:  # noqa: ANN001
    flags = ["--config", str(DIGITS_CONFIG), "--model.init_args.scheduler.name", "step",
             "--model.init_args.scheduler.interval", "epoch", "--model.init_args.scheduler.kwargs", "{step_size: 10}",
             "--model.init_args.optimizer.backbone_lr_scale", "0.1", "--out", "step.png"]
    assert trainkit("plot-lr", *flags) == 0
    with (workdir / "step.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 30 and "epoch" in rows[0]
    head, backbone = [float(r["lr_group0"]) for r in rows], [float(r["lr_group2"]) for r in rows]
    assert head[:10] == pytest.approx([0.003] * 10) and head[10] == pytest.approx(0.0003)
    assert backbone == pytest.approx([lr / 10 for lr in head])

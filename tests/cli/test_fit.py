"""End to end through the real CLI: fit, test, rerun, resume, seeded reproducibility, user-supplied classes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS
from tests.metrics_csv import read_rows


def _last(rows: list[dict[str, str]], key: str) -> float:
    return float([r[key] for r in rows if r.get(key)][-1])


def test_fit_writes_run_folder_and_test_reproduces_it(workdir: Path, trainkit, capsys: pytest.CaptureFixture,
                                                      caplog: pytest.LogCaptureFixture, recwarn) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_DIGITS, "--trainer.enable_model_summary", "true", "--test_after_fit", "true") == 0
    assert "Total params" in caplog.text and "FLOPs" not in caplog.text and "Flops" not in caplog.text
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]  # known_warnings.py silences it
    run = workdir / "runs" / "digits" / "version_0"
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events are written when tensorboard is installed"
    rows = read_rows(run / "metrics.csv")
    fit_test_acc = _last(rows, "test/acc")  # the test after fit, on again here
    assert 0.0 <= fit_test_acc <= 1.0
    assert {"train/loss_step", "val/acc", "val/f1", "val/acc_top5", "train/lr"} <= set(rows[0])
    summary = capsys.readouterr().out
    assert "run folder" in summary and "best checkpoint" in summary and "test/acc" in summary

    assert trainkit("test", *TINY_DIGITS, "--ckpt_path", "best") == 0
    evaluation = run / "test" / "version_0" / "metrics.csv"
    assert _last(read_rows(evaluation), "test/acc") == pytest.approx(fit_test_acc, abs=1e-6)
    table = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()
             if line.startswith("test/")}
    assert table["test/acc"] == f"{fit_test_acc:.4g}" and len(table["test/loss"].replace(".", "")) <= 5, table


def test_rerun_makes_a_new_version_and_resume_continues_in_place(workdir: Path, trainkit) -> None:
    # a cosine schedule recomputes its length on resume; one-cycle's fixed length is tested in tests/optim
    args = [*TINY_DIGITS, "--model.init_args.scheduler.name", "cosine"]
    assert trainkit("fit", *args) == 0
    assert trainkit("fit", *args) == 0  # the same command again must not trip over config.yaml
    runs = workdir / "runs" / "digits"
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]

    assert trainkit("fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"], "resume must not fork a version"
    resumed = runs / "version_1"
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 8  # 4 batches/epoch, continued to 2 epochs
    epochs = {int(r["epoch"]) for r in read_rows(resumed / "metrics.csv") if r.get("val/acc")}
    assert epochs == {0, 1}, "the first epoch's metrics must survive the resume"
    configs = {p.name for p in resumed.glob("config*.yaml")}
    assert configs == {"config.yaml", "config-1.yaml"}, "a changed config is written beside the old one"


def test_saved_config_reruns_the_experiment(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *TINY_DIGITS) == 0
    saved = workdir / "runs" / "digits" / "version_0" / "config.yaml"
    assert "ckpt_path" not in saved.read_text(), "a saved config reruns from scratch and loads in any command"
    assert trainkit("fit", "--config", saved) == 0
    first = read_rows(saved.parent / "metrics.csv")
    second = read_rows(workdir / "runs" / "digits" / "version_1" / "metrics.csv")
    assert _last(second, "val/loss") == pytest.approx(_last(first, "val/loss"), abs=1e-6)


def test_seeded_reruns_give_identical_metrics(workdir: Path, trainkit) -> None:
    for _ in range(2):
        assert trainkit("fit", *TINY_DIGITS, "--seed_everything", "123") == 0
    runs = workdir / "runs" / "digits"
    first, second = (read_rows(runs / v / "metrics.csv") for v in ("version_0", "version_1"))
    for key in ("train/loss_step", "val/loss", "val/acc", "test/acc"):
        assert [r[key] for r in first if r.get(key)] == [r[key] for r in second if r.get(key)], key


def test_user_model_and_datamodule_by_class_path(workdir: Path, trainkit, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "my_project.py").write_text(textwrap.dedent('''
        import torch
        from lightning.pytorch import LightningDataModule
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset


        class TinyNet(nn.Module):
            def __init__(self, hidden: int = 16):
                super().__init__()
                self.layers = nn.Sequential(nn.Flatten(), nn.Linear(12, hidden), nn.ReLU(), nn.Linear(hidden, 3))

            def forward(self, x):
                return self.layers(x)


        class Blobs(LightningDataModule):
            num_classes = 3

            def __init__(self, n: int = 96):
                super().__init__()
                g = torch.Generator().manual_seed(0)
                y = torch.arange(n) % 3
                x = torch.randn(n, 12, generator=g) * 0.3 + nn.functional.one_hot(y, 12).float() * 3
                self.data = TensorDataset(x, y)

            def train_dataloader(self):
                return DataLoader(self.data, batch_size=16, shuffle=True)

            def val_dataloader(self):
                return DataLoader(self.data, batch_size=32)
    '''))
    monkeypatch.syspath_prepend(str(workdir))
    (workdir / "mine.yaml").write_text(textwrap.dedent("""
        experiment: mine
        monitor: val/acc
        mode: max
        trainer: {max_epochs: 8, enable_progress_bar: false, enable_model_summary: false}
        model:
          class_path: trainkit.tasks.ClassificationModule
          init_args:
            num_classes: 3
            backbone: {class_path: my_project.TinyNet, init_args: {hidden: 32}}
            optimizer: {name: adamw, lr: 0.01}
        data: {class_path: my_project.Blobs}
    """))
    assert trainkit("fit", "--config", "mine.yaml") == 0
    rows = read_rows(workdir / "runs" / "mine" / "version_0" / "metrics.csv")
    assert _last(rows, "val/acc") > 0.9, "separable blobs are learnt by the user's own network"


def test_predict_writes_a_csv(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    assert trainkit("predict", *TINY_DIGITS, "--ckpt_path", "best", "--trainer.limit_predict_batches", "2") == 0
    out = workdir / "runs" / "digits" / "version_0" / "predict" / "version_0" / "predictions.csv"
    rows = read_rows(out)
    assert len(rows) == 128 and set(rows[0]) == {"index", "pred", "pred_name", "prob", "target"}
    assert all(r["pred_name"] == r["pred"] for r in rows), "the digits' class names are the digits"
    assert all(0 <= int(r["pred"]) < 10 and 0.0 <= float(r["prob"]) <= 1.0 for r in rows)


def test_user_network_on_the_shipped_digits_data(workdir: Path, trainkit) -> None:
    """A class_path network trains on trainkit's own DataModule (model and data hparams must not clash)."""
    net = "tests.cli.user_nets.TinyDigitsNet"
    args = ["--model.init_args.backbone", net, "--model.init_args.backbone.hidden", "8"]
    assert trainkit("fit", *TINY_DIGITS, *args) == 0
    ckpt = torch.load(workdir / "runs/digits/version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["net.layers.1.weight"].shape == (8, 256)

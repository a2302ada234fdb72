"""Bad input ends in one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import DIGITS_CONFIG, REPO, TINY_DIGITS


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.init_args.lable_smoothing", "0.1"], "lable_smoothing"),
        (["--trainer.max_epochs", "three"], "trainer.max_epochs"),
        (["--data.init_args.batch_size", "0.5"], "data.batch_size"),
        (["--model.init_args.backbone", "resnet81"], "did you mean resnet18"),
        (["--model.init_args.scheduler.name", "cosin"], "choose one of"),
    ],
    ids=["unknown-key", "wrong-type", "wrong-type-nested", "unknown-backbone", "unknown-scheduler"],
)
def test_bad_values(workdir: Path, trainkit, capsys: pytest.CaptureFixture, args: list[str], expected: str) -> None:
    assert trainkit("fit", *TINY_DIGITS, *args) == 2
    assert expected in _error_line(capsys)


def test_unknown_key_in_a_config_file(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    typo = workdir / "typo.yaml"
    typo.write_text(DIGITS_CONFIG.read_text().replace("label_smoothing", "lable_smoothing"))
    assert trainkit("fit", "--config", typo) == 2
    assert "'lable_smoothing' is not accepted" in _error_line(capsys)


def test_missing_config_file(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", "--config", "nope.yaml") == 2
    assert "nope.yaml" in _error_line(capsys)


def test_num_classes_that_do_not_match_the_data(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.num_classes", "5") == 2
    assert "num_classes=5 but the data has num_classes=10" in _error_line(capsys)


def test_channels_that_do_not_match_the_data(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.in_chans", "3") == 2
    assert "in_chans=3 but the data has in_chans=1" in _error_line(capsys)


def test_missing_checkpoint_file(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("test", *TINY_DIGITS, "--ckpt_path", "missing.ckpt") == 2
    assert "missing.ckpt" in _error_line(capsys)


def test_best_checkpoint_before_any_fit(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("test", *TINY_DIGITS, "--ckpt_path", "best") == 2
    assert "run `trainkit fit`" in _error_line(capsys)


def test_failure_keeps_finished_work(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", *TINY_DIGITS) == 0
    before = sorted(p.relative_to(workdir) for p in (workdir / "runs").rglob("*") if p.is_file())
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.num_classes", "5") == 2
    after = {p.relative_to(workdir) for p in (workdir / "runs").rglob("*") if p.is_file()}
    assert set(before) <= after


def test_debug_env_shows_the_traceback(workdir: Path, trainkit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINKIT_DEBUG", "1")
    with pytest.raises(Exception, match="num_classes=5"):
        trainkit("fit", *TINY_DIGITS, "--model.init_args.num_classes", "5")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--monitor", "val/loss", "--mode", "max"], "highest loss (the worst); use --mode min"),
        (["--trainer.max_epochs", "0"], "--trainer.max_epochs 0 trains nothing"),
        (["--trainer.max_epoch", "3"], "unrecognized arguments: --trainer.max_epoch 3; check its spelling"),
        (["--trainer.check_val_every_n_epoch", "5"], "never validates in a 1-epoch run"),
        (["--data.init_args.batch_size", "0"], "--data.init_args.batch_size 0 must be 1 or more"),
        (["--trainer.limit_train_batches", "0"], "--trainer.limit_train_batches 0 trains on no batches"),
        (["--run_name", "../../elsewhere"], "would put the run outside --runs_dir"),
        (["--experiment", "/tmp/abs_exp"], "would put the run outside --runs_dir"),
        (["--model.init_args.backbone.class_path", "nope_module.Net"], "No module named 'nope_module'"),
        (["--model.init_args.backbone", "my_module.MyNet"], "--model.init_args.backbone.class_path my_module.MyNet"),
        (["--config", str(REPO / "configs" / "trainer" / "fsdp.yaml")], "needs CUDA GPUs but this run is on cpu"),
    ],
    ids=["loss-for-max", "zero-epochs", "abbreviation", "val-never", "batch-size-0", "no-train-batches",
         "run-name-escapes", "absolute-experiment", "class-path-import", "dotted-backbone", "fsdp-preset-on-cpu"],
)
def test_inputs_once_accepted_or_misreported(workdir: Path, trainkit, capsys: pytest.CaptureFixture,
                                             args: list[str], expected: str) -> None:
    if "fsdp" in " ".join(args) and torch.cuda.is_available():
        pytest.skip("the FSDP preset runs on a GPU")
    assert trainkit("fit", *TINY_DIGITS, *args) != 0
    assert expected in _error_line(capsys)
    assert not (workdir / "runs").exists() or not any((workdir / "runs").rglob("version_*"))
    assert not (workdir.parent / "elsewhere").exists() and not Path("/tmp/abs_exp").exists()


def test_yaml_syntax_error_names_the_file_and_line(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: 2\n  foo: [1, 2\n")
    assert trainkit("fit", *TINY_DIGITS, "--config", bad) == 2
    line = _error_line(capsys)
    assert f"{bad}: YAML syntax error at line 4" in line and "from line 3" in line


def test_an_explicit_flag_or_task_that_disagrees_with_the_checkpoint(workdir: Path, trainkit,
                                                                      capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    capsys.readouterr()
    assert trainkit("test", *TINY_DIGITS, "--model.init_args.backbone", "resnet18", "--ckpt_path", "best") == 2
    assert "differs from the checkpoint's backbone=test_resnet" in _error_line(capsys)
    segmentation = workdir / "seg.ckpt"  # what a segmentation run's checkpoint records of its task
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "trainkit.tasks.SegmentationModule",
                                                       "num_classes": 3}}, segmentation)
    assert trainkit("test", *TINY_DIGITS, "--ckpt_path", segmentation) == 2
    assert "holds a SegmentationModule but the config builds a ClassificationModule" in _error_line(capsys)

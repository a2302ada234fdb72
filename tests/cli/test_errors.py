"""Bad input ends in one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DIGITS_CONFIG, TINY_DIGITS


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
        (["--model.init_args.backbone", "resnet81"], "did you mean: resnet18"),
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

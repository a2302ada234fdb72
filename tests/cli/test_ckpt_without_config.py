"""`trainkit test --ckpt_path PATH` without `--config` uses the config saved in the checkpoint's run folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from tests.metrics_csv import last_values
from trainkit.saved_config import with_saved_config


def test_a_checkpoint_alone_reproduces_the_fits_test_metrics(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture
) -> None:
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "true") == 0
    run = workdir / "runs" / "digits" / "version_0"
    fitted = last_values(run / "metrics.csv")
    best = run / "checkpoints" / "best.ckpt"

    assert trainkit("test", "--ckpt_path", str(best)) == 0
    tested = last_values(run / "test" / "version_0" / "metrics.csv")
    for key in ("test/acc", "test/loss", "test/f1"):
        assert float(tested[key]) == pytest.approx(float(fitted[key]), abs=1e-6), key
    assert (run / "test" / "version_0" / "report" / "confusion_matrix.png").is_file()

    # an alias needs the experiment to find the run; a flag after the saved config still overrides it
    assert trainkit("validate", "--ckpt_path", "last", "--experiment", "digits",
                    "--trainer.limit_val_batches", "1") == 0
    assert "val/acc" in last_values(run / "validate" / "version_0" / "metrics.csv")

    elsewhere = workdir / "loose.ckpt"
    shutil.copy(best, elsewhere)
    capsys.readouterr()
    assert trainkit("test", "--ckpt_path", str(elsewhere)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no config.yaml beside its run folder; pass the experiment's config too" in err[0]
    assert f"--config CONFIG.yaml --ckpt_path {elsewhere}" in err[0]


def test_an_explicit_config_wins_and_other_commands_are_untouched(tmp_path: Path) -> None:
    ckpt = tmp_path / "exp" / "version_0" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    (ckpt.parent.parent / "config.yaml").write_text("experiment: exp\n")
    (ckpt.parent.parent / "config-1.yaml").write_text("experiment: exp\n")
    given = ["test", "--config", "mine.yaml", "--ckpt_path", str(ckpt)]
    assert with_saved_config(given) == given
    assert with_saved_config(["fit", "--ckpt_path", str(ckpt)]) == ["fit", "--ckpt_path", str(ckpt)]
    assert with_saved_config(["predict", f"--ckpt_path={ckpt}", "--trainer.devices", "1"]) == [
        "predict", "--config", str(ckpt.parent.parent / "config-1.yaml"), f"--ckpt_path={ckpt}",
        "--trainer.devices", "1"]

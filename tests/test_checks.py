"""trainkit.checks on parsed configs: what Lightning would accept silently is refused or named in one line."""

from __future__ import annotations

import os

import pytest
from jsonargparse import Namespace

from trainkit.checks import check_run_config
from trainkit.errors import ConfigError


def _config(**trainer: object) -> Namespace:
    trainer = {"max_epochs": 2, "accelerator": "cpu", **trainer}
    return Namespace(monitor="val/acc", mode="max", trainer=Namespace(**trainer),
                     data=Namespace(class_path="x", init_args=Namespace(batch_size=8)))


def test_more_cpu_devices_than_cores_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    check_run_config(_config(devices=4), "fit")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trainer.devices 4 starts 4 CPU processes on a machine with 2 cores" in err[0]
    check_run_config(_config(devices=2), "fit")
    assert capsys.readouterr().err == ""


def test_a_good_config_passes_and_evaluation_skips_the_fit_checks() -> None:
    check_run_config(_config(devices=1, check_val_every_n_epoch=1), "fit")
    check_run_config(_config(devices=1, max_epochs=0), "test")  # max_epochs means nothing to `test`


def test_a_yaml_tag_that_builds_a_python_object_is_refused_as_such(tmp_path) -> None:  # noqa: ANN001
    from trainkit.checks import check_config_files

    path = tmp_path / "evil.yaml"
    path.write_text("seed_everything: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match=rf"^{path} line 1: the YAML tag '!!python/object/apply:os.system' builds a "
                                          "Python object, and such tags are refused"):
        check_config_files(["--config", str(path)])

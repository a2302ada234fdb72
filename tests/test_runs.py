"""Run folders and checkpoint aliases: best/last/auto resolve to real files, or to one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainkit.errors import ConfigError
from trainkit.runs import next_version, plan_version, resolve_ckpt_path, run_dir_of_checkpoint


def _ckpt(root: Path, version: int, name: str) -> Path:
    path = root / "exp" / f"version_{version}" / "checkpoints" / f"{name}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, path)
    return path


def test_aliases_pick_the_newest_run_that_has_the_file(tmp_path: Path) -> None:
    _ckpt(tmp_path, 0, "best"), _ckpt(tmp_path, 0, "last")
    newest_last = _ckpt(tmp_path, 2, "last")
    (tmp_path / "exp" / "version_10").mkdir()  # an evaluation-only or crashed run without checkpoints
    assert resolve_ckpt_path("best", tmp_path, "exp") == str(tmp_path / "exp/version_0/checkpoints/best.ckpt")
    assert resolve_ckpt_path("last", tmp_path, "exp") == str(newest_last)
    assert resolve_ckpt_path("auto", tmp_path, "exp") == str(newest_last)
    assert next_version(tmp_path, "exp") == "version_11"


def test_a_config_saved_in_a_run_points_at_that_run(tmp_path: Path) -> None:
    old = _ckpt(tmp_path, 0, "best")
    _ckpt(tmp_path, 1, "best")
    config = old.parent.parent / "config.yaml"
    config.write_text("experiment: exp\n")
    assert resolve_ckpt_path("best", tmp_path, "exp", [config]) == str(old)


def test_missing_files_and_fresh_auto(tmp_path: Path) -> None:
    assert resolve_ckpt_path("auto", tmp_path, "exp") is None
    assert resolve_ckpt_path(None, tmp_path, "exp") is None
    with pytest.raises(ConfigError, match="no 'best' checkpoint"):
        resolve_ckpt_path("best", tmp_path, "exp")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path, "exp")


def test_resume_reuses_the_checkpoints_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINKIT_RUN_VERSION", raising=False)
    ckpt = _ckpt(tmp_path, 3, "last")
    assert run_dir_of_checkpoint(ckpt) == ckpt.parent.parent.resolve()
    assert plan_version(tmp_path, "exp", None, str(ckpt)) == "version_3"
    assert plan_version(tmp_path, "exp", "job_42", None) == "job_42"
    assert plan_version(tmp_path, "exp", None, None) == "version_4"

"""Checkpoints are whole or absent, broken ones are reported in one line and skipped, loading is weights-only."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS
from trainkit.errors import ConfigError
from trainkit.hpc.atomic import StagedCheckpointIO, checkpoint_problem, replace_atomically
from trainkit.runs import resolve_ckpt_path

from ._runs import DIGITS_CONFIG


def _checkpoint(path: Path, value: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.full((1000,), value)}, "global_step": int(value)}, path)
    return path


def test_truncated_and_bit_flipped_checkpoints_are_found_without_unpickling(tmp_path: Path) -> None:
    intact = _checkpoint(tmp_path / "intact.ckpt", 1.0)
    assert checkpoint_problem(intact) is None
    data = intact.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    assert "not a complete checkpoint" in checkpoint_problem(truncated)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the tensor data record
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    assert "fails its checksum" in checkpoint_problem(tmp_path / "flipped.ckpt")
    (tmp_path / "empty.ckpt").touch()
    assert checkpoint_problem(tmp_path / "empty.ckpt") == "empty file"


def test_replace_atomically_swaps_files_and_sharded_folders(tmp_path: Path) -> None:
    final, tmp = _checkpoint(tmp_path / "last.ckpt", 1.0), _checkpoint(tmp_path / "last.ckpt.tmp", 2.0)
    replace_atomically(tmp, final)
    assert not tmp.exists() and torch.load(final, weights_only=True)["global_step"] == 2
    (tmp_path / "old" / ".metadata").parent.mkdir()
    (tmp_path / "old" / ".metadata").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / ".metadata").write_text("new")
    replace_atomically(tmp_path / "new", tmp_path / "old")
    assert (tmp_path / "old" / ".metadata").read_text() == "new" and not (tmp_path / "new").exists()
    assert not (tmp_path / "old.old").exists()


def test_broken_last_falls_back_to_the_newest_intact_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = tmp_path / "runs" / "exp" / "version_0" / "checkpoints"
    best = _checkpoint(ckpts / "best.ckpt", 1.0)
    os.utime(best, (1, 1))  # older than step-5.ckpt
    step = _checkpoint(ckpts / "step-5.ckpt", 5.0)
    last = _checkpoint(ckpts / "last.ckpt", 6.0)
    last.write_bytes(last.read_bytes()[:-100])  # a torn write by some other tool
    assert resolve_ckpt_path("last", tmp_path / "runs", "exp") == str(step)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.ckpt is unusable" in err[0] and "step-5.ckpt" in err[0]
    assert resolve_ckpt_path("auto", tmp_path / "runs", "exp") == str(step)

    step.write_bytes(b"garbage")
    assert resolve_ckpt_path("last", tmp_path / "runs", "exp") == str(best)
    best.write_bytes(b"")
    with pytest.raises(ConfigError, match="no intact checkpoint is left"):
        resolve_ckpt_path("last", tmp_path / "runs", "exp")
    with pytest.raises(ConfigError, match=r"best.ckpt cannot be loaded: empty file"):
        resolve_ckpt_path("best", tmp_path / "runs", "exp")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        resolve_ckpt_path(str(last), tmp_path / "runs", "exp")


def test_named_and_slurm_runs_resume_only_from_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    newest = _checkpoint(runs / "exp" / "version_3" / "checkpoints" / "last.ckpt", 3.0)
    assert resolve_ckpt_path("auto", runs, "exp") == str(newest)
    assert resolve_ckpt_path("auto", runs, "exp", run_name="mine") is None  # a fresh named run starts afresh
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURM_JOB_NAME", "trainkit-exp")
    assert resolve_ckpt_path("auto", runs, "exp") is None  # job 41 has no checkpoint yet: no resuming someone else's
    own = _checkpoint(runs / "exp" / "slurm_41" / "checkpoints" / "last.ckpt", 4.0)
    assert resolve_ckpt_path("auto", runs, "exp") == str(own)  # after a requeue: its own checkpoint
    best = _checkpoint(runs / "exp" / "version_3" / "checkpoints" / "best.ckpt", 3.0)
    assert resolve_ckpt_path("best", runs, "exp") == str(best)  # an evaluation job may test any run's best
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # an salloc shell is no batch job
    assert resolve_ckpt_path("auto", runs, "exp") == str(newest)


class _Payload:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("touch pwned",))


def test_resuming_loads_weights_only_so_a_malicious_checkpoint_runs_no_code(workdir: Path, trainkit) -> None:  # noqa: ANN001
    evil = workdir / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload()}, evil)
    code = trainkit("fit", "--config", DIGITS_CONFIG, "--model.init_args.backbone", "test_resnet",
                    "--trainer.max_epochs", "1", "--ckpt_path", evil)
    assert code != 0
    assert not (workdir / "pwned").exists()


def test_saves_stage_beside_the_target_not_in_the_temporary_folder(workdir: Path, trainkit,  # noqa: ANN001
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning staged each save with tempfile.mkstemp in $TMPDIR: a missing (or full) one failed every save.
    monkeypatch.setattr(tempfile, "tempdir", str(workdir / "no-such-tmp"))
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    ckpts = workdir / "runs" / "digits" / "version_0" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert checkpoint_problem(ckpts / "last.ckpt") is None


def test_a_full_disk_names_the_folder_and_keeps_the_previous_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.ckpt"
    StagedCheckpointIO().save_checkpoint({"step": 1}, target)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=f"no space left on the device of {tmp_path}.*--runs_dir"):
        StagedCheckpointIO().save_checkpoint({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]

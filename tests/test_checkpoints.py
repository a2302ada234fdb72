"""A checkpoint whose pickle runs code is refused in one line by every command that takes a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY_DIGITS
from trainkit.checkpoints import load_checkpoint, refusal
from trainkit.errors import ConfigError

MARKER = "pwned-marker"


class _Payload:
    """Unpickled by a full `torch.load`, it runs a shell command that creates MARKER in the working folder."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {MARKER}",))


def _malicious(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "state_dict": {},
        "hyper_parameters": {"_class_path": "trainkit.tasks.ClassificationModule"},
        "callbacks": {},
        "payload": _Payload(),
    }, path)
    return path


def _entry_points(evil: str) -> dict[str, list[str]]:
    distill = ["--config", str(REPO / "configs" / "distillation" / "digits.yaml"), *TINY_DIGITS[2:]]
    return {
        "fit --ckpt_path": ["fit", *TINY_DIGITS, "--ckpt_path", evil],
        "validate": ["validate", *TINY_DIGITS, "--ckpt_path", evil],
        "test": ["test", *TINY_DIGITS, "--ckpt_path", evil],
        "predict": ["predict", *TINY_DIGITS, "--ckpt_path", evil],
        "test best (alias)": ["test", *TINY_DIGITS, "--ckpt_path", "best"],
        "fit auto (alias)": ["fit", *TINY_DIGITS, "--ckpt_path", "last"],
        "export": ["export", "--ckpt_path", evil, "--format", "state_dict"],
        "export best": ["export", "--ckpt_path", "best", "--experiment", "digits", "--format", "state_dict"],
        "lora-merge": ["lora-merge", evil],
        "distillation teacher": ["fit", *distill, "--model.init_args.teacher", evil],
    }


def test_every_command_refuses_a_checkpoint_that_runs_code(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture  # noqa: ANN001
) -> None:
    evil = str(_malicious(workdir / "evil.ckpt"))
    run = workdir / "runs" / "digits" / "version_0" / "checkpoints"
    _malicious(run / "best.ckpt")
    _malicious(run / "last.ckpt")
    for name, args in _entry_points(evil).items():
        capsys.readouterr()
        assert trainkit(*args) != 0, name
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
        assert "refused" in lines[0] and "run code" in lines[0], (name, lines[0])
        assert not (workdir / MARKER).exists(), f"{name} ran the checkpoint's code"


def test_the_loader_reads_real_checkpoints_and_refuses_code(tmp_path: Path) -> None:
    from trainkit.optim import OptimizerConfig

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"optimizer": OptimizerConfig()}}, good)
    assert refusal(good) is None
    assert load_checkpoint(good)["state_dict"]["w"].sum() == 2
    evil = _malicious(tmp_path / "evil.ckpt")
    assert "posix.system" in (refusal(evil) or "")
    with pytest.raises(ConfigError, match="refused"):
        load_checkpoint(evil)

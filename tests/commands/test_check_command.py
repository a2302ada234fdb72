"""`trainkit check`: each preflight problem is caught (exit 2, one line with the fix). That every shipped experiment
passes the same preflight is shown by the fits of tests/commands/test_doctor_command.py::test_shipped_experiments_*."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_CONFIG, REPO

TINY = ["--config", str(DIGITS_CONFIG), "--model.init_args.backbone", "test_resnet",
        "--data.init_args.image_size", "16"]


def _problems(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("trainkit check: problem:")]


def test_check_passes_a_good_config(workdir: Path, trainkit, capsys: pytest.CaptureFixture,
                                    recwarn: pytest.WarningsRecorder) -> None:
    assert trainkit("check", *TINY) == 0
    out, err = capsys.readouterr()
    assert "trainkit check: ok" in out
    assert not list(workdir.iterdir())  # the one-batch run writes nothing where the user is (no runs/, checkpoints/)
    assert not [w for w in recwarn if "LightningCLI's args" in str(w.message)]  # no warning dumping check's argv


def test_misspelled_monitor(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("check", *TINY, "--monitor", "val/accuracy") == 2
    [problem] = _problems(capsys)
    assert "monitor 'val/accuracy' (checkpoint) is never logged" in problem and "set --monitor val/acc" in problem


def test_model_that_cannot_reduce_the_loss(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("check", *TINY, "--model.init_args.optimizer.lr", "0") == 2
    [problem] = _problems(capsys)
    assert "cannot reduce the loss on one batch" in problem and "--model.init_args.optimizer.lr" in problem


def test_fsdp_on_cpu(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("check", *TINY, "--trainer.strategy", "fsdp", "--trainer.accelerator", "cpu") == 2
    [problem] = _problems(capsys)
    assert "needs CUDA GPUs" in problem


def test_slurm_topology_mismatch(workdir: Path, trainkit, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
                       "SLURM_JOB_NAME": "train"}.items():
        monkeypatch.setenv(key, value)
    assert trainkit("check", *TINY, "--trainer.accelerator", "cpu", "--trainer.devices", "1") == 2
    [problem] = _problems(capsys)
    assert "SLURM runs 2 task(s) per node but trainer.devices=1" in problem


def test_fit_stops_in_its_first_seconds_on_a_preflight_problem(workdir: Path, trainkit,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", *TINY, "--monitor", "val/accuracy", "--trainer.max_epochs", "50") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("trainkit: error: monitor 'val/accuracy'")
    assert not list(workdir.glob("runs/digits/version_0/checkpoints/*.ckpt"))


SFT = REPO / "configs" / "language" / "sft.yaml"
SFT_MODEL = json.dumps(yaml.safe_load(SFT.read_text())["model"]["init_args"]["model_config"])


def stand_ins(config: Path) -> list[str]:
    """Flags that let a shipped experiment run in a fresh folder: a tiny teacher that knows the digits (solved by least
    squares, tests/cli/user_nets.py) where it expects a trained one, and
    DPO from the SFT model's architecture freshly built (`initial`) where it expects the SFT run's checkpoint."""
    text = config.read_text()
    if "teacher" in text:
        return ["--model.init_args.teacher", '{"class_path": "tests.cli.user_nets.TinyTeacher"}']
    if "DPOModule" in text:
        return ["--model.init_args.reference", "initial", "--model.init_args.model_config", SFT_MODEL]
    return []


def _experiments() -> list[Path]:
    """Every shipped YAML that is a whole experiment (has a model and data), not a preset like trainer/bf16.

    Those that load pretrained Hub weights need internet: tests/test_configs.py parses them, and
    tests/tasks/test_language.py checks that offline they end in one line. The reward and RL stages start
    from an SFT run (a fresh model stays flat for the walk's 60 steps): their own CLI tests run them. A
    distillation whose teacher logits come with the data starts from a finished fine-tuning run's checkpoint:
    tests/tasks/test_distillation.py runs that DataModule."""
    found = []
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        loaded = yaml.safe_load(path.read_text()) or {}
        if not (isinstance(loaded, dict) and "model" in loaded and "data" in loaded):
            continue
        if (loaded["model"].get("init_args") or {}).get("pretrained") is True:
            continue
        if loaded["model"].get("class_path") in ("trainkit.tasks.RLModule", "trainkit.tasks.RewardModule"):
            continue  # they start from a trained SFT run: tests/tasks/test_rl.py and test_reward.py run their CLI
        if loaded["data"].get("class_path", "").endswith("TeacherLogitsDataModule"):
            continue  # its teacher is a finished run's checkpoint
        found.append(path)
    return found

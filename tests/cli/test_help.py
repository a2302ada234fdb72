"""Help text: field docstrings reach `--help`, the top-level help lists every command in one line each and builds no
CLI, trainkit's groups come before the Trainer's flags, and a typo gets a "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from trainkit.console import extra_commands


def test_subcommand_help_shows_dataclass_field_docstrings(trainkit, capsys: pytest.CaptureFixture) -> None:
    code = trainkit("fit", "--model.help", "ClassificationModule", "--model.optimizer.help", "OptimizerConfig")
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "--model.optimizer.lr LR Base learning rate (of the head" in out


def test_top_level_help_lists_every_command_in_one_line_each(trainkit, capsys: pytest.CaptureFixture) -> None:
    import sys

    sys.modules.pop("trainkit.cli", None)  # the top-level help must not build (or import) the CLI
    assert trainkit("--help") == 0
    out = capsys.readouterr().out
    assert "trainkit.cli" not in sys.modules
    listed = [line.split()[0] for line in out.split("commands:\n")[1].splitlines()]
    assert listed == ["fit", "validate", "test", "predict", *sorted(extra_commands())]
    assert all(len(line) <= 80 for line in out.splitlines()), out


def test_fit_help_puts_trainkit_first_and_lists_no_subclass_dumps(trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", "--help") == 0
    out = capsys.readouterr().out
    assert out.index("--experiment") < out.index("--checkpoint.save_top_k") < out.index("--trainer.max_epochs")
    assert out.index("--trainer.accelerator") > out.index("--doctor.")
    assert len(out.split("\n\n")[0].splitlines()) <= 3 and "--trainer" not in out.split("\n\n")[0]  # not 200 flags
    assert trainkit("fit", "--data.help", "ImageFolderDataModule") == 0
    data_help = capsys.readouterr().out
    assert "--data.root ROOT" in data_help and len(data_help.splitlines()) < 120
    assert "torch.nn.modules" not in data_help


@pytest.mark.parametrize(("args", "expected"), [
    (["--model.init_args.optimizer.lrr", "0.1"], "Option 'lrr' is not accepted; did you mean lr?"),
    (["--model", "ClassificationModul"], "did you mean ClassificationModule?"),
])
def test_a_typo_gets_did_you_mean(  # --trainer.max_epoch: test_errors.py::test_inputs_once_accepted_or_misreported
workdir: Path, trainkit, capsys: pytest.CaptureFixture, args: list[str],
                                  expected: str) -> None:
    assert trainkit("fit", *TINY_DIGITS, *args) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_a_typo_in_a_config_file_gets_did_you_mean(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    (workdir / "typo.yaml").write_text("model:\n  init_args:\n    optimizer:\n      weight_decy: 0.1\n")
    assert trainkit("fit", *TINY_DIGITS, "--config", "typo.yaml") == 2
    assert "did you mean weight_decay?" in capsys.readouterr().err


def test_a_command_line_builds_the_parser_of_the_subcommand_it_names(trainkit, capsys: pytest.CaptureFixture) -> None:
    """Only the named subcommand's parser is built (~1.5 s less for `fit --help`); the others still parse, and a
    misspelt subcommand still lists all four."""
    assert trainkit("test", "--help") == 0
    out = capsys.readouterr().out
    assert "test [-c CONFIG.yaml]" in out and "--ckpt_path" in out and "--test_after_fit" in out
    assert trainkit("fitt") == 2
    assert "invalid choice: 'fitt' (choose from 'fit', 'validate', 'test', 'predict')" in capsys.readouterr().err

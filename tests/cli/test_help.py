"""Help text: field docstrings reach `--help`, and the top-level help lists the subcommands."""

from __future__ import annotations

import pytest


def test_subcommand_help_shows_dataclass_field_docstrings(trainkit, capsys: pytest.CaptureFixture) -> None:
    code = trainkit("fit", "--model.help", "ClassificationModule", "--model.optimizer.help", "OptimizerConfig")
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "--model.optimizer.lr LR Base learning rate (of the head" in out


def test_top_level_help_lists_the_subcommands(trainkit, capsys: pytest.CaptureFixture) -> None:
    assert trainkit("--help") == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fit", "validate", "test", "predict"))

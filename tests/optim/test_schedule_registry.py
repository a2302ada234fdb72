"""The schedule registry is the one list of schedules: the docs table and `--help` are read from it."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from trainkit.optim import SCHEDULES, SchedulerConfig
from trainkit.optim.schedule_registry import markdown_table


def test_docs_table_is_the_registry() -> None:
    docs = (REPO / "docs" / "optimization.md").read_text()
    assert markdown_table() in docs, "docs/optimization.md is out of date; paste in:\n" + markdown_table()


def test_help_lists_every_schedule(trainkit, capsys: pytest.CaptureFixture) -> None:
    code = trainkit("fit", "--model.help", "ClassificationModule", "--model.scheduler.help", "SchedulerConfig")
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    out = " ".join(captured.out.split())
    assert "Schedule: " + ", ".join(SCHEDULES) + "." in out


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_defaults_come_from_the_record(name: str) -> None:
    config = SchedulerConfig(name=name)
    assert config.step_interval == SCHEDULES[name].interval
    assert config.warmup_intervals(100) == round(SCHEDULES[name].warmup * 100)

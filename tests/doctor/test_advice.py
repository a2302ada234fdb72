"""Every doctor case's advice, for a run of every shipped task family, is a flag that run's own parser accepts (or
words): a table's run is never told to set `drop_rate` or an image augmentation."""

from __future__ import annotations

import pytest
import yaml

from tests.doctor.test_suggested_flags import _preflight_flags
from tests.families import FAMILIES
from trainkit.doctor import CASES
from trainkit.doctor.advice import Try, accepts, for_run
from trainkit.doctor.evidence import Hit, Settings


def _resolved_config(trainkit, capsys: pytest.CaptureFixture, argv: list[str]) -> dict:
    capsys.readouterr()
    assert trainkit("fit", *argv, "--print_config") == 0
    return yaml.safe_load(capsys.readouterr().out)


def _advice(config: dict) -> list[str]:
    hit, run = Hit(0, 10, "", stop_epoch=4), Settings.of(config)
    return [advice for case in CASES.values() for advice in for_run(case.flags(hit, run), config)]


def test_a_flag_is_kept_only_where_the_run_has_its_key() -> None:
    config = {"model": {"init_args": {"dropout": 0.0}}, "data": {"init_args": {"batch_size": 32}}}
    choice = Try("more dropout", ("--model.init_args.drop_rate 0.2", "--model.init_args.dropout 0.3"))
    assert accepts(config, "--data.init_args.batch_size 64") and not accepts(config, "--data.init_args.x 1")
    assert for_run([choice, "--data.init_args.train_transform X", "check the labels"], config) == [
        "--model.init_args.dropout 0.3", "check the labels"]
    assert for_run([Try("augment the data", ("--data.init_args.train_transform X",))], config) == ["augment the data"]
    assert for_run([choice], None) == ["more dropout"]  # no saved config: nothing can be checked, words only


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_case_suggests_flags_that_parse_for_the_run(family: str, workdir, trainkit,
                                                          capsys: pytest.CaptureFixture) -> None:
    argv = FAMILIES[family]
    config = _resolved_config(trainkit, capsys, argv)
    advice = _advice(config)
    flags = sorted({tuple(a.split(" (")[0].split()) for a in advice if a.startswith("--")})
    flags += [tuple(flag) for flag in _preflight_flags()]
    assert len(flags) > 10
    # One parse for all; only when it fails, one parse per flag to name the ones this run refuses.
    if trainkit("fit", *argv, *[part for flag in flags for part in flag], "--print_config") == 0:
        return
    stale = [" ".join(flag) for flag in flags if trainkit("fit", *argv, *flag, "--print_config") != 0]
    assert not stale, f"the doctor suggests flags that a {family} run refuses: {stale}"


def test_a_table_run_gets_its_own_dropout_and_augmentation_in_words(workdir, trainkit,
                                                                     capsys: pytest.CaptureFixture) -> None:
    advice = _advice(_resolved_config(trainkit, capsys, FAMILIES["regression (table)"]))
    assert "--model.init_args.dropout 0.3" in advice and "augment the training data (or collect more)" in advice
    assert not [a for a in advice if "drop_rate" in a or "train_transform" in a]

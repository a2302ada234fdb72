"""One protocol for callbacks that can be off: each says `enabled`, and the CLI attaches only the enabled ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_DIGITS
from trainkit.callbacks import CLI_CALLBACKS
from trainkit.cli import TrainkitCLI

# With every option at its default, these groups have work to do; the others are off until configured.
ON_BY_DEFAULT = {"checkpoint", "predictions", "resume", "preemption", "doctor", "train_stats", "nan_guard",
                 "spike_guard", "throughput", "distributed", "data_summary"}


def test_every_cli_callback_says_enabled() -> None:
    for key, callback_class in CLI_CALLBACKS.items():
        assert isinstance(callback_class().enabled, bool), f"--{key} ({callback_class.__name__}) has no `enabled`"


def test_default_fit_attaches_exactly_the_enabled_callbacks(workdir: Path) -> None:
    cli = TrainkitCLI([*TINY_DIGITS], run=False)
    attached = {type(c) for c in cli.trainer.callbacks}
    for key, callback_class in CLI_CALLBACKS.items():
        assert (callback_class in attached) == (key in ON_BY_DEFAULT), f"--{key} ({callback_class.__name__})"


@pytest.mark.parametrize(("flags", "key"), [
    (["--ema.decay", "0.99"], "ema"), (["--lora.r", "4", "--lora.target_modules", "[fc]"], "lora"),
    (["--early_stopping.patience", "2"], "early_stopping"),
])
def test_configuring_a_group_attaches_it(workdir: Path, flags: list[str], key: str) -> None:
    cli = TrainkitCLI([*TINY_DIGITS, *flags], run=False)
    assert CLI_CALLBACKS[key] in {type(c) for c in cli.trainer.callbacks}


def test_nan_guard_off_is_left_out(workdir: Path) -> None:
    cli = TrainkitCLI([*TINY_DIGITS, "--nan_guard.action", "off"], run=False)
    assert CLI_CALLBACKS["nan_guard"] not in {type(c) for c in cli.trainer.callbacks}

"""The Doctor callback: the monitor is checked at the first validation even with the preflight off."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY_DIGITS


def test_a_monitor_typo_with_the_preflight_off_is_one_line_at_the_first_validation(
    workdir: Path, trainkit, capsys  # noqa: ANN001
) -> None:
    code = trainkit("fit", *TINY_DIGITS, "--doctor.preflight", "false", "--monitor", "val/accuracy")
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0 and error.startswith("trainkit: error: ") and "val/accuracy" in error, error
    assert "val/acc" in error and "MisconfigurationException" not in error, error

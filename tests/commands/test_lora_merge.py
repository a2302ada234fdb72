"""`trainkit lora-merge` refuses checkpoints without adapters with a one-line error."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY_DIGITS


def test_plain_checkpoint_is_refused(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_DIGITS, "--test_after_fit", "false") == 0
    best = workdir / "runs" / "digits" / "version_0" / "checkpoints" / "best.ckpt"
    assert trainkit("lora-merge", best) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "holds no LoRA adapters to merge" in err and str(best) in err

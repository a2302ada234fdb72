"""RunCheckpoint: last.ckpt always holds the finished run, and saves leave no temporary files behind."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import TINY_DIGITS


def test_last_checkpoint_holds_the_final_step_even_between_step_saves(workdir: Path, trainkit) -> None:  # noqa: ANN001
    # 4 steps, saves every 3: Lightning alone would leave last.ckpt at step 3.
    assert trainkit("fit", *TINY_DIGITS, "--checkpoint.every_n_train_steps", "3", "--test_after_fit", "false") == 0
    ckpts = workdir / "runs" / "digits" / "version_0" / "checkpoints"
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]  # no *.tmp left over (no best: no val at step 3)

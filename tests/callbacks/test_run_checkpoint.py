"""RunCheckpoint: last.ckpt always holds the finished run, and saves leave no temporary files behind."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS


def test_last_checkpoint_holds_the_final_step_even_between_step_saves(workdir: Path, trainkit) -> None:  # noqa: ANN001
    # 4 steps, saves every 3: Lightning alone would leave last.ckpt at step 3.
    assert trainkit("fit", *TINY_DIGITS, "--checkpoint.every_n_train_steps", "3", "--test_after_fit", "false") == 0
    ckpts = workdir / "runs" / "digits" / "version_0" / "checkpoints"
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4
    # no *.tmp left over; best is judged at the validation of step 4, whatever the step interval
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]


def _val_acc_by_step(run: Path) -> dict[int, float]:
    with (run / "metrics.csv").open() as file:
        # Lightning logs validation metrics at global_step - 1; keyed here by the global_step a checkpoint records
        return {int(row["step"]) + 1: float(row["val/acc"]) for row in csv.DictReader(file) if row.get("val/acc")}


def test_best_is_judged_at_every_validation_while_last_follows_the_step_interval(workdir: Path, trainkit) -> None:  # noqa: ANN001
    # 3 epochs of 4 steps, `last` every 3 steps: Lightning alone picks `best` at steps 6 and 9 against the previous
    # epoch's val/acc and never judges the final validation.
    assert trainkit("fit", *TINY_DIGITS, "--trainer.max_epochs", "3", "--checkpoint.every_n_train_steps", "3",
                    "--checkpoint.every_n_epochs", "1", "--test_after_fit", "false") == 0
    run = workdir / "runs" / "digits" / "version_0"
    val_acc = _val_acc_by_step(run)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in best["callbacks"].items() if k.startswith("RunCheckpoint"))
    assert best["global_step"] in val_acc  # written right after a validation, never at a step trigger
    assert float(state["best_model_score"]) == pytest.approx(val_acc[best["global_step"]])
    assert float(state["best_model_score"]) == pytest.approx(max(val_acc.values()))
    assert sorted(val_acc) == [4, 8, 12]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 12


def test_keep_last_keeps_the_newest_epochs_and_the_one_resumed_from(workdir: Path, trainkit) -> None:  # noqa: ANN001
    flags = [*TINY_DIGITS, "--checkpoint.keep_last", "2", "--test_after_fit", "false", "--run_name", "kept",
             "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
             "--model.init_args.scheduler.name", "constant"]  # one-cycle's length would change with max_epochs
    assert trainkit("fit", *flags, "--trainer.max_epochs", "3") == 0
    ckpts = workdir / "runs" / "digits" / "kept" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "epoch=1-step=2.ckpt", "epoch=2-step=3.ckpt",
                                                       "last.ckpt"]
    # resumed from the older one, two more epochs: the newest two stay, and so does the one resumed from
    assert trainkit("fit", *flags, "--trainer.max_epochs", "4", "--ckpt_path", ckpts / "epoch=1-step=2.ckpt") == 0
    assert sorted(p.name for p in ckpts.glob("epoch=*")) == ["epoch=1-step=2.ckpt", "epoch=2-step=3.ckpt",
                                                            "epoch=3-step=4.ckpt"]
    assert torch.load(ckpts / "epoch=3-step=4.ckpt", map_location="cpu", weights_only=True)["global_step"] == 4

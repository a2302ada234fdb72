"""Two DDP processes on CPU (gloo) train like one process with the same global batch; only rank 0 writes files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ._runs import REPO, SMALL_DIGITS, VIT, finish, last_metrics, start


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(workdir: Path) -> None:
    ddp = start("fit", *SMALL_DIGITS, *VIT, "--config", str(REPO / "configs" / "trainer" / "ddp.yaml"),
                "--trainer.devices", "2", "--data.init_args.batch_size", "16", "--run_name", "ddp", cwd=workdir)
    single = start("fit", *SMALL_DIGITS, *VIT, "--trainer.devices", "1", "--data.init_args.batch_size", "32",
                   "--run_name", "single", cwd=workdir)
    finish(ddp)
    finish(single)

    runs = workdir / "runs" / "digits"
    assert sorted(p.name for p in runs.iterdir()) == ["ddp", "single"]  # rank 1 made no run folder of its own
    two, one = last_metrics(runs / "ddp"), last_metrics(runs / "single")
    assert two["step"] == one["step"] == 7
    # Same samples, same steps; only the order of float sums differs (all-reduce of two halves vs one mean).
    # Synced metrics only: train/loss is logged per process (rank 0's half batch), torchmetrics sync across ranks.
    assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-5)
    assert two["val/acc"] == pytest.approx(one["val/acc"], abs=1 / 64)  # at most one of 64 samples may flip
    assert two["train/acc"] == pytest.approx(one["train/acc"], abs=1 / 256)
    ckpts = [torch.load(runs / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
             for name in ("ddp", "single")]
    for name, value in ckpts[1].items():
        torch.testing.assert_close(ckpts[0][name], value, rtol=1e-4, atol=1e-6, msg=name)

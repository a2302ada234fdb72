"""Two DDP processes on CPU (gloo) train like one process with the same global batch; only rank 0 writes files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ._runs import REPO, SMALL_DIGITS, finish, last_metrics, start

# A ViT has no BatchNorm, whose per-process batch statistics would differ from the global batch's (SyncBatchNorm
# needs CUDA); with LayerNorm only, the averaged gradients of two half batches equal the gradient of the whole batch.
# Plain SGD: Adam's first steps divide each gradient by its own magnitude, so float noise in near-zero gradients
# (all-reduce of two halves vs one mean) would grow into visible differences that say nothing about DDP.
VIT = ["--model.init_args.backbone", "test_vit", "--model.init_args.backbone_kwargs", "{img_size: 16, patch_size: 4}",
       "--model.init_args.optimizer.name", "sgd", "--model.init_args.optimizer.lr", "0.05",
       "--trainer.max_epochs", "1", "--test_after_fit", "false", "--trainer.accelerator", "cpu"]


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

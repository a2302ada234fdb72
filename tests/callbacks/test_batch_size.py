"""Batch-size search and out-of-memory recovery on CPU, with a network that runs out of memory above a batch size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tests.conftest import DIGITS_CONFIG, DOCTOR_OFF


class OOMAbove(nn.Module):
    """A digits classifier that raises torch.OutOfMemoryError on training batches larger than `limit`, from its
    `after`-th training forward pass on (an injected fault: the memory limit of a smaller GPU)."""

    def __init__(self, limit: int = 16, after: int = 0, cpu_allocator: bool = False) -> None:
        super().__init__()
        self.limit, self.after, self.calls, self.cpu_allocator = limit, after, 0, cpu_allocator
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            self.calls += 1
            if len(x) > self.limit and self.calls > self.after and self.cpu_allocator:
                torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB: the CPU allocator's real "can't allocate memory"
            if len(x) > self.limit and self.calls > self.after:
                raise torch.OutOfMemoryError(f"CUDA out of memory (injected: batch {len(x)} > {self.limit})")
        return self.layers(x)


def _fit(trainkit, *args: str) -> int:  # noqa: ANN001
    return trainkit("fit", "--config", DIGITS_CONFIG, "--model.init_args.backbone.class_path",
                    "tests.callbacks.test_batch_size.OOMAbove", "--data.init_args.image_size", "8",
                    "--data.init_args.batch_size", "64", "--doctor.preflight", "false", *DOCTOR_OFF,
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *args)


def _last(workdir: Path) -> dict:
    return torch.load(workdir / "runs" / "digits" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("cpu_allocator", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["cuda_oom", "cpu_allocator"])
def test_search_picks_the_largest_batch_that_fits_and_keeps_the_effective_batch(
    workdir: Path, trainkit, caplog: pytest.LogCaptureFixture, cpu_allocator: bool  # noqa: ANN001
) -> None:
    code = _fit(trainkit, "--batch_size.search", "true", "--trainer.max_epochs", "1",
                "--model.init_args.backbone.init_args.cpu_allocator", str(cpu_allocator).lower())
    assert code == 0
    assert "batch-size search: per-device batch 16 (32 ran out of memory); effective batch 64 kept with " \
           "--trainer.accumulate_grad_batches 4" in caplog.text
    assert _last(workdir)["global_step"] == 20  # 1,258 digits in 64s: the same 20 optimizer steps as batch 64


def test_oom_mid_run_restarts_from_the_last_checkpoint_at_half_the_batch(
    workdir: Path, trainkit, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    # 20 training batches in epoch 0 fit; the first batch of epoch 1 runs out of memory.
    code = _fit(trainkit, "--batch_size.oom_recovery", "true", "--trainer.max_epochs", "2",
                "--model.init_args.backbone.init_args.after", "20")
    assert code == 0
    lines = [r.getMessage() for r in caplog.records if "out of memory at per-device batch" in r.getMessage()]
    assert len(lines) == 2
    assert "batch 64; restarting from" in lines[0] and "last.ckpt with batch 32" in lines[0]
    assert "batch 32; restarting from" in lines[1] and "with batch 16 and --trainer.accumulate_grad_batches 4" \
        in lines[1]
    assert _last(workdir)["global_step"] == 40  # the uninterrupted run's 2 x 20 steps: same schedule


def test_oom_recovery_gives_up_at_the_floor_with_one_line(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    code = _fit(trainkit, "--batch_size.oom_recovery", "true", "--batch_size.min_batch_size", "32",
                "--trainer.max_epochs", "1")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("trainkit: error: BatchTooLargeError: out of memory at per-device batch 32")
    assert "--batch_size.min_batch_size 32" in err

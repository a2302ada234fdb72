"""The 2-process DDP fits of several tests, run once, one after the other, in the same two processes.

A fresh interpreter costs ~7 s of CPU before it trains and every DDP run starts two, so the tests whose rule only
real DDP ranks show share one run of this module: rank 0 (a fork of the test process) starts rank 1 at the first fit
(Lightning runs `python tests/ddp_fits.py OUT`), and every later fit finds both processes and their process group.
Each fit writes into its own folder OUT/<name>; each test asserts its part (see below for which test reads which
fit). The CLI fits all use `--run_name ddp`: rank 1 keeps the run folder name it was handed at the first fit.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, Trainer

from tests.conftest import DIGITS_CONFIG, DOCTOR_OFF
from tests.hpc._runs import ForkedRun

# Who asserts on each fit: schedule tests/optim/test_ddp_schedule.py, sft tests/tasks/test_language.py, streaming
# tests/data/test_streaming.py, class_balanced tests/data/test_class_balanced.py, spike_skip and spike_rollback
# tests/callbacks/test_spike_guard.py (each test is named ..._two_ddp_... or ..._ddp_rank_...).
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--run_name", "ddp"]
SCHEDULE = [
    "--config", str(DIGITS_CONFIG), "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
    "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--test_after_fit", "false",
    *DOCTOR_OFF, "--model.init_args.optimizer.lr", "0.003", "--model.init_args.optimizer.lr_scaling", "linear",
    "--model.init_args.optimizer.base_batch_size", "64", "--model.init_args.scheduler.name", "warmup_cosine",
    "--model.init_args.scheduler.warmup", "3", "--model.init_args.scheduler.min_lr_ratio", "0.1",
]


def ddp_fits() -> tuple[Path, str]:
    """OUT and the output of the one run of every fit (the first test that asks pays; a failed run fails each test
    that asks, with its output, without running again)."""
    out, code, output = _run()
    assert code == 0, output[-4000:]
    return out, output


@functools.cache
def _run() -> tuple[Path, int, str]:
    out = Path(tempfile.mkdtemp(prefix="trainkit-ddp-fits-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    # Inputs are written here, before rank 1 exists (both ranks would write them at once).
    from tests.data.test_streaming import _id_shards, _regression_config

    (out / "streaming").mkdir()
    _regression_config(out / "streaming", _id_shards(out / "streaming"), workers=2, epochs=2)
    # Rank 0 is a fork of this test process (a fresh interpreter is ~7 s of CPU); Lightning starts rank 1 afresh.
    rank0 = ForkedRun(str(out), cwd=out, log=out / "ddp_fits.log", main=main, script=Path(__file__))
    code = rank0.wait(timeout=800)
    return out, code, rank0.log_path.read_text()


class RankSpike(Callback):
    """Multiplies rank 1's batch at step 25 by 1e3: a spike only one rank sees."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == 25 and trainer.global_rank == 1:
            batch[0].mul_(1e3)


class SamplerReport(Callback):
    """Appends each batch's rank, sampler type, sampler rank and world and class counts to FOLDER/rank<R>.txt."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        s = trainer.train_dataloader.sampler
        counts = sorted(Counter(batch[1].tolist()).values())  # a test probe: the host read is the point
        with (self.folder / f"rank{trainer.global_rank}.txt").open("a") as report:
            report.write(f"batch {trainer.global_rank} {type(s).__name__} {s.rank} {s.num_replicas} {counts}\n")


def _cli_fits(out: Path) -> None:
    from tests.conftest import run_trainkit
    from tests.data.test_streaming import _fit_args, _recorder
    from tests.tasks.test_language import SFT, TINY_CLI

    for name, args in {
        "schedule": ["fit", *SCHEDULE],
        "sft": ["fit", "--config", str(SFT), *TINY_CLI],
        "streaming": _fit_args(out / "streaming" / "ids.yaml", "ddp", *_recorder(out / "streaming" / "ids")),
    }.items():
        code = run_trainkit(*args, *DDP, "--runs_dir", str(out / name / "runs"))
        assert code == 0, f"the {name} fit exited with {code}"


def _class_balanced(out: Path) -> None:
    from lightning.pytorch import seed_everything

    from trainkit.data import ClassBalancedDataModule, DigitsDataModule
    from trainkit.tasks import MetricLearningModule

    folder = out / "class_balanced"
    folder.mkdir(exist_ok=True)
    seed_everything(0)
    data = ClassBalancedDataModule(DigitsDataModule(image_size=16), classes_per_batch=4, samples_per_class=3)
    model = MetricLearningModule(backbone="test_resnet", in_chans=1, embedding_dim=8)
    Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=2, limit_val_batches=0,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[SamplerReport(folder)]).fit(model, datamodule=data)


def _spike_guard(out: Path) -> None:
    from tests.tiny_runs import train_tiny
    from trainkit.callbacks import SpikeGuard

    for action in ("skip", "rollback"):
        folder = out / f"spike_{action}"
        guard = SpikeGuard(action, window=10)
        run = train_tiny(folder, optimizer="sgd", lr=0.1, epochs=2, log_every=5, callbacks=[RankSpike(), guard],
                         strategy="ddp", devices=2)
        weights = [round(float(p.double().sum()), 10) for p in run.model.parameters()]
        (folder / f"rank{run.trainer.global_rank}.json").write_text(json.dumps({
            "steps": [e["step"] for e in guard.events], "weights": weights}))


def main(folder: str) -> int:
    """Every fit, one after the other, on this rank; the same on the other."""
    import torch

    root = Path(folder)
    _cli_fits(root)
    _class_balanced(root)
    _spike_guard(root)
    torch.distributed.barrier()  # both ranks' files are written before rank 0 exits
    print("ddp fits: done", flush=True)
    return 0


if __name__ == "__main__":
    main(sys.argv[1])

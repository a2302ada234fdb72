"""A 2-process CPU DDP run of the digits MLP whose rank 1 alone gets a spiking batch at step 25, once with `skip` and
once with `rollback`, both fits in the same two processes (a fresh interpreter costs ~7 s of CPU); each rank writes
the steps its spike guard caught and its final weights to OUT_DIR/ACTION/rank{R}.json (`python _spike_ddp.py OUT`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer

from tests.tiny_runs import train_tiny
from trainkit.callbacks import SpikeGuard


class _RankSpike(Callback):
    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == 25 and trainer.global_rank == 1:
            batch[0].mul_(1e3)


if __name__ == "__main__":
    for action in ("skip", "rollback"):  # the second fit finds the process group of the first (and rank 1 running)
        out = Path(sys.argv[1]) / action
        guard = SpikeGuard(action, window=10)
        run = train_tiny(out, optimizer="sgd", lr=0.1, epochs=2, log_every=5, callbacks=[_RankSpike(), guard],
                         strategy="ddp", devices=2)
        weights = [round(float(p.double().sum()), 10) for p in run.model.parameters()]
        (out / f"rank{run.trainer.global_rank}.json").write_text(json.dumps({
            "steps": [e["step"] for e in guard.events], "weights": weights}))
    torch.distributed.barrier()  # both ranks' files are written before rank 0 exits

"""The spike guard catches a batch made to spike at its step, keeps the run on course, and never touches a healthy
run; under DDP every rank takes the same decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.ddp_fits import ddp_fits
from tests.tiny_runs import BatchTamper, train_tiny
from trainkit.callbacks import SpikeGuard
from trainkit.doctor.curves import read_metrics
from trainkit.doctor.report import examine, table
from trainkit.doctor.spikes import read_spikes
from trainkit.errors import ConfigError

SPIKE_STEP = 20  # of the 40 steps of one epoch of the digits MLP: after a window of 10 losses
SGD = {"optimizer": "sgd", "lr": 0.1}  # plain SGD: a x1000 batch's gradient throws the weights far off


def _final_val_loss(run_dir: Path) -> float:
    return float(read_metrics(run_dir)["val/loss"].values[-1])


@pytest.fixture(scope="module")
def unguarded(tmp_path_factory: pytest.TempPathFactory) -> float:
    run = train_tiny(tmp_path_factory.mktemp("off"), epochs=1, log_every=5, callbacks=[BatchTamper(SPIKE_STEP, 1e3)],
                     **SGD)
    return _final_val_loss(run.run_dir)


@pytest.mark.parametrize("action", ["skip", "rollback"])
def test_a_spike_is_caught_at_its_step_and_the_run_ends_lower(tmp_path: Path, unguarded: float, action: str) -> None:
    guard = SpikeGuard(action, window=10)
    run = train_tiny(tmp_path, epochs=1, log_every=5, callbacks=[BatchTamper(SPIKE_STEP, 1e3), guard], **SGD)
    assert guard.events[0]["step"] == SPIKE_STEP and guard.events[0]["batch_idx"] == SPIKE_STEP
    if action == "skip":
        assert [e["step"] for e in guard.events] == [SPIKE_STEP]  # dropped: the steps after it are healthy
    else:  # the steps until the check (every 5) trained on the damaged weights: all flagged, all rolled back
        assert Path(guard.events[0]["saved"]).name == "last-good-step20.ckpt"
        assert run.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05)
    loss = _final_val_loss(run.run_dir)
    assert loss < 0.5 * unguarded, (loss, unguarded)
    assert [r["step"] for r in read_spikes(run.run_dir)] == [e["step"] for e in guard.events]
    assert f"step {SPIKE_STEP} (loss" in table(examine(run.run_dir, write=False))  # the doctor names the batch


def test_warn_changes_nothing_and_a_healthy_run_is_never_touched(tmp_path: Path) -> None:
    tiny = {"epochs": 1, "log_every": 5, "limit_train_batches": 30, "limit_val_batches": 1}
    plain = train_tiny(tmp_path / "plain", **tiny)
    skip, warn = SpikeGuard("skip", window=10), SpikeGuard("warn", window=10)  # both on one run: 20 steps judged
    guarded = train_tiny(tmp_path / "guarded", callbacks=[skip, warn], **tiny)
    assert not skip.events and not warn.events and not (guarded.run_dir / "spikes.jsonl").exists()
    for key, value in plain.model.state_dict().items():
        assert torch.equal(guarded.model.state_dict()[key], value), key


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="spike_guard.window=2"):
        SpikeGuard(window=2)
    with pytest.raises(ConfigError, match="spike_guard.lr_factor=0"):
        SpikeGuard(lr_factor=0)


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_fits")
def test_every_ddp_rank_takes_the_same_decision() -> None:
    # Only rank 1's batch spikes at step 25 (tests/ddp_fits.py); both ranks must drop (or roll back) the step, or
    # their weights part ways.
    out, _ = ddp_fits()
    for action in ("skip", "rollback"):
        ranks = [json.loads((out / f"spike_{action}" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["steps"] == ranks[1]["steps"] and ranks[0]["steps"][0] == 25
        assert ranks[0]["weights"] == ranks[1]["weights"]

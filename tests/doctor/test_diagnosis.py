"""Each curve case, produced by a real short training run with a real defect, is named by the doctor; healthy
runs get no finding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_runs import BatchTamper, run_tiny
from trainkit.callbacks import NonFiniteGuard
from trainkit.doctor import Curves, Series, diagnose, examine

# case -> the defect that produces it (keyword arguments of tiny_runs.train_tiny)
CASE_RUNS = {
    # Adam warming up into LR 0.3: the loss falls while the LR is small, then climbs back up.
    "diverging": dict(lr=0.3, warmup=0.99),
    # Adam at 3e-5: four epochs move the loss by a few percent, steadily.
    "slow": dict(lr=3e-5),
    # Plain SGD at LR 10 on a linear model: it bounces instead of settling.
    "oscillating": dict(optimizer="sgd", lr=10.0, hidden=0),
    # Validation labels permuted: training learns, validation cannot follow.
    "val_flat": dict(shuffle_val_labels=True),
    # Every weight frozen; the one trainable scalar shifts all logits, which softmax ignores.
    "flat": dict(frozen=True),
    # One batch multiplied by Inf at step 60; the guard skips that step so the run goes on.
    "nan": dict(callbacks=[BatchTamper(60, math.inf), NonFiniteGuard("skip")]),
    # One batch multiplied by 1e3 at step 100: an outlier batch.
    "jump": dict(callbacks=[BatchTamper(100, 1e3)]),
    # 64 training images, a wide MLP, 30 epochs: validation loss turns up after about epoch 10.
    "overfitting": dict(train_subset=64, hidden=512, epochs=30, lr=3e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASE_RUNS))
def test_each_case_is_named_from_a_real_run(case: str, tmp_path: Path) -> None:
    report = examine(run_tiny(tmp_path, **CASE_RUNS[case]))
    assert [f.case for f in report.findings][:1] == [case]
    finding = report.findings[0]
    assert finding.causes and finding.flags
    assert 0 <= finding.start <= finding.end
    assert (report.run_dir / "doctor.md").read_text().count(finding.title) >= 2
    assert (report.run_dir / "doctor.png").stat().st_size > 10_000
    if case == "nan":  # named at the very step the Inf went in
        assert finding.start == 60 and "step 60" in finding.evidence
    if case == "overfitting":  # and says when to stop
        val = report.curves.val
        best_epoch = int(val.epochs[np.argmin(val.values)])
        assert finding.stop_epoch == best_epoch and 3 <= best_epoch <= 20
        assert f"--trainer.max_epochs {best_epoch + 1}" in finding.flags


@pytest.mark.slow
@pytest.mark.parametrize(
    "run", [dict(), dict(epochs=8, log_every=5, weight_decay=0.05), dict(optimizer="momentum", lr=0.05)],
    ids=["adamw", "converged", "sgd"],
)
def test_healthy_runs_get_no_finding(run: dict, tmp_path: Path) -> None:
    report = examine(run_tiny(tmp_path, **run))
    assert report.healthy, [f.evidence for f in report.findings]
    assert "Healthy" in (report.run_dir / "doctor.md").read_text()


def _curves(train: list[float], val: list[float] | None = None) -> Curves:
    steps = np.arange(len(train), dtype=float)
    val = val or []
    val_steps = np.linspace(0, len(train) - 1, len(val)) if val else np.zeros(0)
    return Curves(
        train=Series("train/loss_step", steps, np.asarray(train, dtype=float), np.zeros(len(train))),
        val=Series("val/loss", val_steps, np.asarray(val, dtype=float), np.arange(len(val), dtype=float)),
        monitor=Series("val/loss"), monitor_mode="min", lr=Series("train/lr"), grad_norm=Series("train/grad_norm"),
        nonfinite_steps=[], config={"model": {"init_args": {"optimizer": {"lr": 0.01}}}},
    )


def test_too_few_points_say_nothing() -> None:
    assert diagnose(_curves([2.3, 5.0, 9.0, 30.0])) == []


def test_flags_use_the_runs_own_lr() -> None:
    findings = diagnose(_curves([1.0 + 0.2 * i for i in range(20)]))
    assert findings[0].case == "diverging"
    assert "--model.init_args.optimizer.lr 0.001" in findings[0].flags


def _run(train: list[float], val: list[float], metric: list[float], epochs: int, **config: object) -> Curves:
    """Curves of a run of `epochs` epochs of 10 logged steps each: a validation (val loss, monitor) per epoch."""
    steps = np.linspace(0, 10 * epochs - 1, len(train))
    val_steps = 10 * np.arange(1, epochs + 1, dtype=float) - 1
    epoch_axis = np.arange(epochs, dtype=float)
    name = str(config.get("monitor", "val/acc"))
    return Curves(
        train=Series("train/loss_step", steps, np.asarray(train, dtype=float), steps // 10),
        val=Series("val/loss", val_steps, np.asarray(val, dtype=float), epoch_axis),
        monitor=Series(name, val_steps, np.asarray(metric, dtype=float), epoch_axis),
        monitor_mode=str(config.get("mode", "max")), lr=Series("train/lr"), grad_norm=Series("train/grad_norm"),
        nonfinite_steps=[], config={"trainer": {"max_epochs": epochs}, **config},
    )


def test_a_run_blown_far_above_chance_loss_is_diverged_even_with_few_points() -> None:
    # LR 50 with the preflight off: the loss is astronomically high from the first logged step, accuracy at chance.
    curves = _run([3.1e10, 2.2e11, 1.7e11], [2.6e11, 2.5e11], [0.10, 0.10], 2,
                  model={"init_args": {"num_classes": 10, "optimizer": {"lr": 50.0}}})
    (finding,) = diagnose(curves)
    assert finding.case == "diverged"
    assert "val loss reached 2.6e+11, chance is 2.3 (ln 10 classes)" in finding.evidence
    assert "val/acc best 0.1, chance 0.1" in finding.evidence
    assert "--model.init_args.optimizer.lr 5" in finding.flags


def test_a_run_still_improving_when_the_schedule_ended_is_unfinished_with_a_growing_gap() -> None:
    # The language run of issue 23: exact match climbing 0.20 -> 0.54 over 20 epochs, val loss flat near 0.65 while
    # the train loss falls to 0.3.
    epochs = 20
    match = [0.20 + 0.34 * (i / (epochs - 1)) ** 0.8 for i in range(epochs)]
    val = [0.66 + 0.01 * ((-1) ** i) - 0.002 * i for i in range(epochs)]
    train = [1.0 * (0.3 / 1.0) ** (i / 199) for i in range(200)]
    # The saved config holds every key the run accepts; advice naming another key is left out (doctor/advice.py).
    curves = _run(train, val, match, epochs, monitor="val/exact_match", mode="max",
                  model={"init_args": {"optimizer": {"lr": 1e-3, "weight_decay": 0.05}}})
    found = {f.case: f for f in diagnose(curves)}
    assert set(found) == {"unfinished", "gap"}, {k: f.evidence for k, f in found.items()}
    assert "val/exact_match rose 0.2 -> 0.54" in found["unfinished"].evidence
    assert "--trainer.max_epochs 40" in found["unfinished"].flags
    assert "train loss fell 0.889 -> 0.338 while val loss stayed near 0.616" in found["gap"].evidence
    assert "--model.init_args.optimizer.weight_decay 0.1" in found["gap"].flags
    assert any("more training data" in flag for flag in found["gap"].flags)


def test_a_run_whose_monitor_levelled_off_is_not_unfinished() -> None:
    epochs = 20
    match = [0.54 - 0.34 * 0.6 ** i for i in range(epochs)]  # most of the gain in the first epochs
    val = [1.0 * 0.6 ** (i / 4) + 0.3 for i in range(epochs)]
    train = [1.0 * 0.6 ** (i / 40) + 0.25 for i in range(200)]
    assert diagnose(_run(train, val, match, epochs, monitor="val/exact_match", mode="max")) == []

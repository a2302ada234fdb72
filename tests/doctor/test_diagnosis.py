"""Each curve case is named by the doctor on the curves of a real short training run with a real defect; healthy
runs get no finding. The curves were recorded by `python -m tests.tiny_runs` (tests/doctor/curves/); one defect and
one healthy run are trained here for real, so the recordings cannot drift from what a run logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_runs import CASE_RUNS, HEALTHY_RUNS, RECORDED, run_case
from trainkit.doctor import Curves, Series, diagnose, examine

TRAINED = ["nan", "adamw"]  # one defect, one healthy run: trained in the test, not read from a recording


def _run(name: str, tmp_path: Path, trained: bool) -> Path:
    """The run folder of `name`: trained now, or a copy of its recorded metrics.csv (examine writes beside it)."""
    if trained:
        run = run_case(tmp_path, name)
        header = (run / "metrics.csv").read_text().splitlines()[0]
        assert header == (RECORDED / name / "metrics.csv").read_text().splitlines()[0], \
            "a run logs other columns than the recording: re-record with `python -m tests.tiny_runs`"
        return run
    return Path(shutil.copytree(RECORDED / name, tmp_path / name))


def _params(names: list[str]) -> list:
    return [pytest.param(name, False, id=name) for name in names] + [
        pytest.param(name, True, id=f"{name}-trained", marks=pytest.mark.slow) for name in names if name in TRAINED]


@pytest.mark.parametrize(("case", "trained"), _params(list(CASE_RUNS)))
def test_each_case_is_named_from_a_real_run(case: str, trained: bool, tmp_path: Path) -> None:
    report = examine(_run(case, tmp_path, trained))
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


@pytest.mark.parametrize(("run", "trained"), _params(list(HEALTHY_RUNS)))
def test_healthy_runs_get_no_finding(run: str, trained: bool, tmp_path: Path) -> None:
    report = examine(_run(run, tmp_path, trained))
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


def _synthetic_run(train: list[float], val: list[float], metric: list[float], epochs: int, **config: object) -> Curves:
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
    curves = _synthetic_run([3.1e10, 2.2e11, 1.7e11], [2.6e11, 2.5e11], [0.10, 0.10], 2,
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
    curves = _synthetic_run(train, val, match, epochs, monitor="val/exact_match", mode="max",
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
    assert diagnose(_synthetic_run(train, val, match, epochs, monitor="val/exact_match", mode="max")) == []


def _waiting(step_seconds: float) -> Curves:
    """A healthy falling loss over 40 steps, logged every 4, whose loop waited 40% of each step for its batch."""
    curves = _curves([2.3 * 0.97**i for i in range(40)])
    windows = np.arange(3.0, 40.0, 4.0)
    curves.data_wait = Series("train/data_wait_frac", windows, np.full(len(windows), 0.4), np.zeros(len(windows)))
    curves.step_time = Series("train/step_time", windows, np.full(len(windows), step_seconds), np.zeros(len(windows)))
    return curves


def test_input_bound_only_where_the_wait_adds_up_to_something() -> None:
    # 40 steps of 0.2 s waiting 40%: 3.2 s lost to the loader. Of 3 ms (a 10-feature MLP): 0.05 s, nothing to win.
    assert [f.case for f in diagnose(_waiting(0.2))] == ["input_bound"]
    assert diagnose(_waiting(0.003)) == []

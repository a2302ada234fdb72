"""Curve diagnosis: pure functions from a run's logged curves to named findings with causes and flags to try.

The thresholds are deliberately loose: a finding must be plain on the plot, because a false alarm on a healthy run
costs the user more than a missed subtle one. Every rule works on robust statistics (medians, not means) of the
per-step training loss and the per-validation loss, so single noisy batches do not trigger anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainkit.doctor.curves import Curves, Series

MIN_TRAIN_POINTS = 8  # fewer logged training losses than this say nothing about a trend
MIN_VAL_POINTS = 3  # validation trends need a start, a middle and an end
INPUT_BOUND = 0.3  # waiting for data over 30% of the step time: faster loading would speed the run by over 1.4x


@dataclass
class Finding:
    """One diagnosed problem: which case, where on the step axis, the numbers behind it and what to try."""

    case: str
    start: int
    end: int
    evidence: str
    causes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    stop_epoch: int | None = None
    """For overfitting: the epoch with the best validation loss."""

    @property
    def title(self) -> str:
        """The case's human name."""
        return CASES[self.case][0]


# case -> (title, likely causes). The flags to try depend on the run's config, see _flags().
CASES: dict[str, tuple[str, list[str]]] = {
    "nan": ("NaN loss", ["exploding gradients", "log or division by zero in the loss", "NaN/Inf in the data",
                         "fp16 overflow"]),
    "diverging": ("diverging", ["LR too high", "exploding gradients", "bad data", "no input normalisation"]),
    "jump": ("sharp jump", ["non-finite or extreme values in a batch", "outlier samples", "poor shuffling"]),
    "oscillating": ("oscillating", ["LR too high", "batch too small", "poor shuffling", "bad samples"]),
    "slow": ("slow decline", ["LR too small", "vanishing gradients"]),
    "flat": ("train and val flat", ["wrong loss for the task", "frozen parameters", "LR far too small",
                                    "architecture mismatch"]),
    "val_flat": ("val flat while train improves", ["label or data-preparation bug in the val split",
                                                   "train/val distribution shift", "class imbalance"]),
    "overfitting": ("overfitting", ["model memorises the training set: too little data or regularisation"]),
    "input_bound": ("input-bound", ["too few loader workers", "slow decoding or augmentation",
                                    "slow storage", "no pinned memory for host-to-device copies"]),
    "sync_bound": ("sync-bound", ["a .item(), .cpu(), .tolist(), print(tensor) or bool(tensor) every step in the "
                                  "task or a callback", "--nan_guard.action skip (reads the loss every step)"]),
}


def diagnose(curves: Curves) -> list[Finding]:
    """All findings for one run, the most severe first; an empty list means the run looks healthy."""
    findings: list[Finding] = []
    train = curves.train.finite()
    nan = _nan(curves)
    if nan is not None:
        findings.append(nan)
        # Look at the curve only up to the first NaN: what came before it is the story of why.
        train = _before(train, nan.start)
    trend = _Trend.of(train) if len(train) >= MIN_TRAIN_POINTS else None
    if trend is not None:
        for rule in (_diverging, _oscillating, _jump, _slow, _flat):
            finding = rule(train, trend, curves)
            if finding is not None:
                findings.append(finding)
                if finding.case in ("diverging", "oscillating", "flat"):
                    break  # these describe the whole curve; the milder rules would only restate them
    if nan is None or len(curves.val.finite()) >= MIN_VAL_POINTS:
        val = _val_rules(curves, train, trend)
        if val is not None and not any(f.case in ("diverging", "flat") for f in findings):
            findings.append(val)
    for rule in (_input_bound, _sync_bound):  # speed cases: from the Throughput callback's metrics
        finding = rule(curves)
        if finding is not None:
            findings.append(finding)
    for finding in findings:
        finding.causes = list(CASES[finding.case][1])
        finding.flags = _flags(finding, curves)
    return findings


@dataclass
class _Trend:
    """Robust summary of a training-loss curve: medians of its first, middle and last fifth, and its noise."""

    head: float
    middle: float
    tail: float
    low: float
    low_step: int
    noise: float
    late_noise: float
    level: float

    @classmethod
    def of(cls, train: Series) -> _Trend:
        values = train.values
        k = max(2, len(values) // 5)
        mid = len(values) // 2
        smooth = _rolling_median(values, max(3, len(values) // 10))
        residual = values - smooth
        low_index = int(np.argmin(smooth))
        return cls(
            head=float(np.median(values[:k])),
            middle=float(np.median(values[max(0, mid - k // 2): mid + k // 2 + 1])),
            tail=float(np.median(values[-k:])),
            low=float(smooth[low_index]),
            low_step=int(train.steps[low_index]),
            noise=_robust_std(residual),
            late_noise=_robust_std(residual[mid:]),
            level=float(np.median(np.abs(values))),
        )

    @property
    def drop(self) -> float:
        """Relative decrease from the first to the last fifth (negative when the loss grew)."""
        return (self.head - self.tail) / max(abs(self.head), 1e-12)


def _robust_std(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation: blind to a few extreme batches."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values)))) if len(values) else 0.0


def _nan(curves: Curves) -> Finding | None:
    bad_steps = [int(s) for s, v in zip(curves.train.steps, curves.train.values, strict=True) if not np.isfinite(v)]
    bad_val = [int(s) for s, v in zip(curves.val.steps, curves.val.values, strict=True) if not np.isfinite(v)]
    caught = list(curves.nonfinite_steps)
    steps = sorted(set(bad_steps + bad_val + caught))
    if not steps:
        return None
    parts = []
    if bad_steps:
        parts.append(f"train loss non-finite at {len(bad_steps)} logged step(s) from step {bad_steps[0]}")
    if bad_val:
        parts.append(f"val loss non-finite at {len(bad_val)} validation(s) from step {bad_val[0]}")
    if caught:
        parts.append(f"the non-finite guard caught {len(caught)} step(s), first at step {caught[0]}")
    return Finding("nan", steps[0], _last_step(curves), "; ".join(parts))


def _diverging(train: Series, t: _Trend, curves: Curves) -> Finding | None:
    # Grew well past where it started and far above its own best: not noise, not a warmup bump that recovers.
    grew = t.tail > 1.3 * t.head and t.tail > 1.5 * t.low
    # Or it gave back most of its progress and ended at twice its best (a warmup into too high an LR).
    grew = grew or (t.tail > 2 * t.low and t.tail - t.low > max(0.5 * (t.head - t.low), 2 * t.late_noise))
    # Or it shot up right before the NaN that ended it (the usual huge-LR story).
    exploded_into_nan = bool(curves.nonfinite_steps or not np.all(np.isfinite(curves.train.values))) and (
        t.tail > 2.0 * t.low and t.tail > t.head
    )
    if not (grew or exploded_into_nan):
        return None
    return Finding("diverging", t.low_step, int(train.steps[-1]),
                   f"train loss rose from {t.low:.3g} (step {t.low_step}) to {t.tail:.3g}; it started at {t.head:.3g}")


def _jump(train: Series, t: _Trend, curves: Curves) -> Finding | None:
    values, steps = train.values, train.steps
    window = max(3, len(values) // 20)
    step_noise = float(np.median(np.abs(np.diff(values)))) + 1e-12
    bases = np.asarray([np.median(values[i - window: i]) for i in range(window, len(values))])
    rises = values[window:] - bases
    # Small batches make heavy-tailed losses: a jump must also dwarf the run's other big rises (its 5th largest).
    typical_big = float(np.sort(rises)[-5]) if len(rises) >= 20 else 0.0
    events: list[int] = []
    for offset, (base, rise) in enumerate(zip(bases, rises, strict=True)):
        i = offset + window
        # A jump towers over the batch-to-batch noise, at least doubles the recent loss and is large on the scale
        # of the whole curve; an LR warmup bump or a hard batch is not all of these at once.
        if (rise > 10 * step_noise and values[i] > 2 * base and rise > 0.25 * (t.head - t.low + t.noise)
                and rise > 3 * typical_big):
            if not events or i - events[-1] > window:
                events.append(i)
    if not events or len(events) > 3:  # many jumps are an oscillating curve, not a jump
        return None
    i = max(events, key=lambda j: values[j])
    base = float(np.median(values[max(0, i - window): i]))
    return Finding("jump", int(steps[i]), int(steps[min(len(steps) - 1, i + window)]),
                   f"train loss jumped from {base:.3g} to {values[i]:.3g} at step {int(steps[i])}"
                   + (f" ({len(events)} jumps)" if len(events) > 1 else ""))


def _oscillating(train: Series, t: _Trend, curves: Curves) -> Finding | None:
    # In the second half, swings as large as half the loss itself and large on the scale of the starting loss:
    # batch noise near convergence is large relative to a small loss, but small against where the run began.
    if not (t.late_noise > 0.5 * abs(t.tail) and t.late_noise > 0.2 * abs(t.head)):
        return None
    return Finding("oscillating", int(train.steps[len(train) // 2]), int(train.steps[-1]),
                   f"train loss swings by ±{t.late_noise:.3g} around {t.tail:.3g} in the second half of the run "
                   f"(it started at {t.head:.3g})")


def _slow(train: Series, t: _Trend, curves: Curves) -> Finding | None:
    first_half, second_half = t.head - t.middle, t.middle - t.tail
    # Still falling at the end about as fast as at the start (not converged), yet little progress overall.
    # A tiny LR also gives a smooth curve: the batch noise stays small next to the loss.
    if not (0.02 < t.drop < 0.3 and second_half > 0.25 * max(first_half, 0.0) and second_half > t.noise / 4
            and t.noise < 0.1 * t.level):
        return None
    lr = curves.lr.finite()
    if len(lr) >= 2 and lr.values[-1] >= lr.values.max() and lr.values[-1] > 1.5 * lr.values[0]:
        return None  # the LR is still warming up to its peak: slow early progress is the schedule, not a fault
    return Finding("slow", int(train.steps[0]), int(train.steps[-1]),
                   f"train loss fell only {100 * t.drop:.1f}% ({t.head:.3g} -> {t.tail:.3g}) and is still "
                   "falling at the same pace")


def _flat(train: Series, t: _Trend, curves: Curves) -> Finding | None:
    if abs(t.drop) >= 0.02 or (t.head - t.middle) / max(abs(t.head), 1e-12) >= 0.02:
        return None
    val = curves.val.finite()
    if len(val) >= 2 and abs(val.values[0] - val.values.min()) > 0.02 * abs(val.values[0]):
        return None  # validation moved: the training loss alone being flat is not this case
    val_note = f"; val loss {val.values[0]:.3g} -> {val.values[-1]:.3g}" if len(val) else ""
    return Finding("flat", int(train.steps[0]), int(train.steps[-1]),
                   f"train loss changed {100 * -t.drop:+.1f}% over the run ({t.head:.3g} -> {t.tail:.3g}){val_note}")


def _input_bound(curves: Curves) -> Finding | None:
    wait = curves.data_wait.finite()
    if len(wait) >= 3:
        wait = Series(wait.name, wait.steps[1:], wait.values[1:], wait.epochs[1:])  # the first starts the workers
    if len(wait) < 2 or float(np.median(wait.values)) < INPUT_BOUND:
        return None
    return Finding("input_bound", int(wait.steps[0]), int(wait.steps[-1]),
                   f"the loop waited for the next batch {100 * float(np.median(wait.values)):.0f}% of the step time "
                   f"(median of {len(wait)} logging windows)")


def _sync_bound(curves: Curves) -> Finding | None:
    syncs = curves.syncs.finite()
    if not len(syncs) or float(np.median(syncs.values)) < 1:
        return None
    return Finding("sync_bound", int(syncs.steps[0]), int(syncs.steps[-1]),
                   f"{float(np.median(syncs.values)):.1f} host-device synchronisations per training step on steps "
                   "that are not logged: the GPU queue drains every step")


def _val_rules(curves: Curves, train: Series, t: _Trend | None) -> Finding | None:
    val = curves.val.finite()
    if len(val) < MIN_VAL_POINTS or t is None:
        return None
    values = val.values
    first, best_index = float(values[0]), int(np.argmin(values))
    best, last = float(values[best_index]), float(values[-1])
    train_fell = t.drop > 0.3
    improved = (first - best) > 0.02 * abs(first)
    val_noise = float(np.median(np.abs(np.diff(values)))) if len(values) > 2 else 0.0
    if train_fell and not improved and (last - t.tail) > 0.5 * (t.head - t.tail):
        return Finding("val_flat", int(val.steps[0]), int(val.steps[-1]),
                       f"train loss fell {t.head:.3g} -> {t.tail:.3g} but val loss never improved on its first "
                       f"value {first:.3g} (last {last:.3g})")
    rose = last - best > max(0.05 * abs(best), 2 * val_noise) and bool(np.all(values[best_index + 1:] > best))
    train_at_best = _value_at(train, int(val.steps[best_index]))
    train_kept_falling = train_at_best is not None and t.tail < 0.9 * train_at_best
    if improved and best_index < len(values) - 1 and rose and train_kept_falling:
        epoch = int(val.epochs[best_index]) if np.isfinite(val.epochs[best_index]) else best_index
        return Finding("overfitting", int(val.steps[best_index]), int(val.steps[-1]),
                       f"val loss was best ({best:.3g}) at epoch {epoch} (step {int(val.steps[best_index])}), then "
                       f"rose to {last:.3g} while train loss fell {train_at_best:.3g} -> {t.tail:.3g}; "
                       f"stop at epoch {epoch}", stop_epoch=epoch)
    return None


def _flags(finding: Finding, curves: Curves) -> list[str]:
    """Concrete flags to try, with numbers taken from the run's own config where it has them."""
    lr = _config_value(curves.config, "model", "init_args", "optimizer", "lr")
    batch = _config_value(curves.config, "data", "init_args", "batch_size")
    lr_down = f"--model.init_args.optimizer.lr {lr / 10:.3g}" if lr else "--model.init_args.optimizer.lr <LR/10>"
    lr_up = f"--model.init_args.optimizer.lr {lr * 10:.3g}" if lr else "--model.init_args.optimizer.lr <LR*10>"
    bigger_batch = f"--data.init_args.batch_size {batch * 4}" if batch else "--data.init_args.batch_size <4x>"
    clip, warmup = "--trainer.gradient_clip_val 1.0", "--model.init_args.scheduler.warmup 0.05"
    if finding.case == "nan":
        return [clip, lr_down, "--trainer.precision 32-true", "--nan_guard.action skip"]
    if finding.case == "diverging":
        return [lr_down, clip, warmup]
    if finding.case == "jump":
        return [clip, "--nan_guard.action skip", "check the batches at the jump for outliers"]
    if finding.case == "oscillating":
        return [lr_down, bigger_batch, clip]
    if finding.case == "slow":
        return [lr_up, "--model.init_args.scheduler.name onecycle", "--monitors.per_module true (vanishing grads)"]
    if finding.case == "flat":
        return [lr_up, "--monitors.per_module true (are gradients zero?)", "check requires_grad and the loss"]
    if finding.case == "input_bound":
        workers = int(_config_value(curves.config, "data", "init_args", "num_workers") or 0)
        more = max(2, min(8, 2 * workers))
        return [f"--data.init_args.num_workers {more}",
                "pin_memory=True and persistent_workers=True in the DataLoader (trainkit's DataModules set both "
                "where they pay: CUDA, num_workers > 0)", "lighter augmentation (--data.init_args.train_transform)",
                "cache decoded samples, or stream them from local disk (litdata)"]
    if finding.case == "sync_bound":
        return ["torch.cuda.set_sync_debug_mode('warn') names each synchronising line",
                "log with self.log(...) instead of reading values (.item()) every step", "--nan_guard.action stop"]
    if finding.case == "val_flat":
        return ["check val labels and preprocessing match train", "compare class counts of train and val"]
    epoch = finding.stop_epoch
    stop = f"--trainer.max_epochs {epoch + 1}" if epoch is not None else "--trainer.max_epochs <best epoch + 1>"
    return [stop, "--early_stopping.patience 3", "--model.init_args.drop_rate 0.2",
            "--model.init_args.optimizer.weight_decay 0.1", "--data.init_args.train_transform (augmentation)"]


def _config_value(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int | float) and not isinstance(node, bool) and node > 0 else None


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    return np.asarray([np.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))])


def _before(series: Series, step: int) -> Series:
    keep = series.steps < step
    return Series(series.name, series.steps[keep], series.values[keep], series.epochs[keep])


def _value_at(series: Series, step: int) -> float | None:
    """Median training loss over the logged points nearest before `step`."""
    before = series.values[series.steps <= step]
    if len(before) == 0:
        return None
    return float(np.median(before[-max(3, len(series) // 20):]))


def _last_step(curves: Curves) -> int:
    ends = [int(s.steps[-1]) for s in (curves.train, curves.val) if len(s)]
    return max(ends + list(curves.nonfinite_steps) or [0])

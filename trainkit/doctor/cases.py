"""The doctor's cases, one record each: how it is detected, its title, likely causes and the flags to try.

Adding a case is one `Case(...)` entry in `CASES` (and its detector beside it). Cases are looked for in the order
listed; `superseded_by` names the cases that, once found, explain the curve so that this one is not looked for.

The thresholds are deliberately loose: a finding must be plain on the plot, because a false alarm on a healthy run
costs the user more than a missed subtle one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainkit.doctor.advice import Try
from trainkit.doctor.evidence import (
    MIN_VAL_POINTS,
    Evidence,
    Hit,
    Settings,
    config_number,
    last_step,
    nonfinite_steps,
    value_at,
)
from trainkit.doctor.layers import dead, exploding, saturated, vanishing

SKIP_NONFINITE = "--nan_guard.action skip"
PER_MODULE = "--train_stats.per_module true"


@dataclass(frozen=True)
class Case:
    """One kind of problem the doctor names."""

    name: str
    title: str
    causes: tuple[str, ...]
    detect: Callable[[Evidence], Hit | None]
    flags: Callable[[Hit, Settings], list[str | Try]]
    """Flags to try (or plain advice), with numbers taken from the run's own config where it has them; each flag is
    kept only where the run accepts it (`trainkit.doctor.advice`), a `Try` falls back to its words."""
    color: str = "gray"
    """Shading of the case's steps in doctor.png."""
    needs_trend: bool = True
    """Only looked for when enough training losses were logged to speak of a trend."""
    superseded_by: tuple[str, ...] = ()


def _nan(e: Evidence) -> Hit | None:
    curves = e.curves
    bad_steps, bad_val = nonfinite_steps(curves.train), nonfinite_steps(curves.val)
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
    return Hit(steps[0], last_step(curves), "; ".join(parts))


CHANCE_LOSS_TIMES = 100  # cross-entropy starts near ln(classes); 100x that is a blown-up run, never a slow one


def _diverged(e: Evidence) -> Hit | None:
    classes = config_number(e.curves.config, "model", "init_args", "num_classes")
    if not isinstance(classes, int) or classes < 2:
        return None
    chance = math.log(classes)
    parts = [(name, series.finite()) for name, series in (("train loss", e.curves.train), ("val loss", e.curves.val))]
    parts = [(name, series) for name, series in parts if len(series)]
    if not parts:
        return None
    name, series = max(parts, key=lambda part: float(part[1].values.max()))
    worst = float(series.values.max())
    if worst <= CHANCE_LOSS_TIMES * chance:
        return None
    evidence = f"{name} reached {worst:.3g}, chance is {chance:.2g} (ln {classes} classes)"
    accuracy = e.curves.monitor.finite()
    if "acc" in accuracy.name and len(accuracy):
        evidence += f"; {accuracy.name} best {float(accuracy.values.max()):.3g}, chance {1 / classes:.2g}"
    start = int(series.steps[int(np.argmax(series.values > CHANCE_LOSS_TIMES * chance))])
    return Hit(start, last_step(e.curves), evidence)


def _diverging(e: Evidence) -> Hit | None:
    t, train, curves = e.trend, e.train, e.curves
    # Grew well past where it started and far above its own best: not noise, not a warmup bump that recovers.
    grew = t.tail > 1.3 * t.head and t.tail > 1.5 * t.low
    # Or it gave back most of its progress and ended at twice its best (a warmup into too high an LR).
    grew = grew or (t.tail > 2 * t.low and t.tail - t.low > max(0.5 * (t.head - t.low), 2 * t.late_noise))
    # Or it shot up right before the NaN that ended it (the usual huge-LR story).
    exploded_into_nan = bool(curves.nonfinite_steps or not np.all(np.isfinite(curves.train.values))) and (
        t.tail > 2.0 * t.low and t.tail > t.head
    )
    # Or it blew up within the first steps, so even its head is high: orders of magnitude above the first loss.
    first, val = float(train.values[0]), e.curves.val.finite().values
    worst_val = float(np.max(val)) if len(val) else -np.inf
    if first > 0 and (t.tail > 10 * first or worst_val > 100 * first):
        val_part = f", val loss reached {worst_val:.3g}" if worst_val > 100 * first else ""
        return Hit(int(train.steps[0]), int(train.steps[-1]),
                   f"loss rose by orders of magnitude: train loss {first:.3g} at step {int(train.steps[0])} to "
                   f"{t.tail:.3g}{val_part}")
    if not (grew or exploded_into_nan):
        return None
    return Hit(t.low_step, int(train.steps[-1]),
               f"train loss rose from {t.low:.3g} (step {t.low_step}) to {t.tail:.3g}; it started at {t.head:.3g}")


def _oscillating(e: Evidence) -> Hit | None:
    t, train = e.trend, e.train
    # In the second half, swings as large as half the loss itself and large on the scale of the starting loss:
    # batch noise near convergence is large relative to a small loss, but small against where the run began.
    if not (t.late_noise > 0.5 * abs(t.tail) and t.late_noise > 0.2 * abs(t.head)):
        return None
    return Hit(int(train.steps[len(train) // 2]), int(train.steps[-1]),
               f"train loss swings by ±{t.late_noise:.3g} around {t.tail:.3g} in the second half of the run "
               f"(it started at {t.head:.3g})")


def _jump(e: Evidence) -> Hit | None:
    t, values, steps = e.trend, e.train.values, e.train.steps
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
    return Hit(int(steps[i]), int(steps[min(len(steps) - 1, i + window)]),
               f"train loss jumped from {base:.3g} to {values[i]:.3g} at step {int(steps[i])}"
               + (f" ({len(events)} jumps)" if len(events) > 1 else ""))


def _slow(e: Evidence) -> Hit | None:
    t, train = e.trend, e.train
    first_half, second_half = t.head - t.middle, t.middle - t.tail
    # Still falling at the end about as fast as at the start (not converged), yet little progress overall.
    # A tiny LR also gives a smooth curve: the batch noise stays small next to the loss.
    if not (0.02 < t.drop < 0.3 and second_half > 0.25 * max(first_half, 0.0) and second_half > t.noise / 4
            and t.noise < 0.1 * t.level):
        return None
    lr = e.curves.lr.finite()
    if len(lr) >= 2 and lr.values[-1] >= lr.values.max() and lr.values[-1] > 1.5 * lr.values[0]:
        return None  # the LR is still warming up to its peak: slow early progress is the schedule, not a fault
    return Hit(int(train.steps[0]), int(train.steps[-1]),
               f"train loss fell only {100 * t.drop:.1f}% ({t.head:.3g} -> {t.tail:.3g}) and is still "
               "falling at the same pace")


def _flat(e: Evidence) -> Hit | None:
    t, train = e.trend, e.train
    if abs(t.drop) >= 0.02 or (t.head - t.middle) / max(abs(t.head), 1e-12) >= 0.02:
        return None
    val = e.curves.val.finite()
    if len(val) >= 2 and abs(val.values[0] - val.values.min()) > 0.02 * abs(val.values[0]):
        return None  # validation moved: the training loss alone being flat is not this case
    val_note = f"; val loss {val.values[0]:.3g} -> {val.values[-1]:.3g}" if len(val) else ""
    return Hit(int(train.steps[0]), int(train.steps[-1]),
               f"train loss changed {100 * -t.drop:+.1f}% over the run ({t.head:.3g} -> {t.tail:.3g}){val_note}")


def _val_flat(e: Evidence) -> Hit | None:
    val, t = e.curves.val.finite(), e.trend
    if len(val) < MIN_VAL_POINTS:
        return None
    first, last = float(val.values[0]), float(val.values[-1])
    improved = (first - float(val.values.min())) > 0.02 * abs(first)
    if t.drop > 0.3 and not improved and (last - t.tail) > 0.5 * (t.head - t.tail):
        return Hit(int(val.steps[0]), int(val.steps[-1]),
                   f"train loss fell {t.head:.3g} -> {t.tail:.3g} but val loss never improved on its first "
                   f"value {first:.3g} (last {last:.3g})")
    return None


def _overfitting(e: Evidence) -> Hit | None:
    val, t = e.curves.val.finite(), e.trend
    if len(val) < MIN_VAL_POINTS:
        return None
    values = val.values
    first, best_index = float(values[0]), int(np.argmin(values))
    best, last = float(values[best_index]), float(values[-1])
    improved = (first - best) > 0.02 * abs(first)
    val_noise = float(np.median(np.abs(np.diff(values)))) if len(values) > 2 else 0.0
    rose = last - best > max(0.05 * abs(best), 2 * val_noise) and bool(np.all(values[best_index + 1:] > best))
    train_at_best = value_at(e.train, int(val.steps[best_index]))
    train_kept_falling = train_at_best is not None and t.tail < 0.9 * train_at_best
    if not (improved and best_index < len(values) - 1 and rose and train_kept_falling):
        return None
    epoch = int(val.epochs[best_index]) if np.isfinite(val.epochs[best_index]) else best_index
    return Hit(int(val.steps[best_index]), int(val.steps[-1]),
               f"val loss was best ({best:.3g}) at epoch {epoch} (step {int(val.steps[best_index])}), then "
               f"rose to {last:.3g} while train loss fell {train_at_best:.3g} -> {t.tail:.3g}; "
               f"stop at epoch {epoch}", stop_epoch=epoch)


def _unfinished(e: Evidence) -> Hit | None:
    metric = e.curves.monitor.finite()
    if len(metric) < 5:  # a trend at the end needs a start, a middle and a last quarter of two or more
        return None
    sign = 1.0 if e.curves.monitor_mode == "max" else -1.0
    values = sign * metric.values
    gain = float(values.max() - values[0])
    if gain <= 0.02 * max(abs(float(values[0])), abs(float(values.max())), 1e-12):
        return None
    quarter = max(2, len(values) // 4)
    recent = float(values[-1] - values[-quarter - 1])
    # Ends at (or next to) its best and made a fifth or more of its whole gain in the last quarter: still climbing.
    if not (values[-1] >= values.max() - 0.05 * gain and recent >= 0.2 * gain):
        return None
    verb = "rose" if sign > 0 else "fell"
    return Hit(int(metric.steps[-quarter - 1]), int(metric.steps[-1]),
               f"{metric.name} {verb} {metric.values[0]:.3g} -> {metric.values[-1]:.3g} over {len(values)} "
               f"validations, {100 * recent / gain:.0f}% of that in the last {quarter}: still improving when the "
               "run ended")


def _longer(run: Settings) -> list[str]:
    if not run.max_epochs:
        return ["train for about twice as many epochs (--trainer.max_epochs)"]
    flag = f"--trainer.max_epochs {2 * run.max_epochs}"
    return [flag, f"--ckpt_path last {flag} (continue this run for the extra epochs)"]


def _gap(e: Evidence) -> Hit | None:
    val, t = e.curves.val.finite(), e.trend
    if len(val) < 5 or t.drop < 0.3:
        return None
    half = len(val) // 2
    k = max(1, min(3, (len(val) - half) // 2))
    val_mid, val_end = float(np.median(val.values[half: half + k])), float(np.median(val.values[-k:]))
    train_mid, train_start = value_at(e.train, int(val.steps[half])), value_at(e.train, int(val.steps[0]))
    if train_mid is None or train_start is None or train_mid <= 0:
        return None
    train_fall = (train_mid - t.tail) / abs(train_mid)
    val_fall = (val_mid - val_end) / max(abs(val_mid), 1e-12)
    gap_start, gap_end = float(val.values[0]) - train_start, val_end - t.tail
    # In the second half training kept improving at three times validation's pace, and the gap between them grew.
    if not (train_fall > 0.15 and val_fall < train_fall / 3 and gap_end > 0.2 * abs(val_end)
            and gap_end > gap_start + 0.1 * abs(val_end)):
        return None
    return Hit(int(val.steps[half]), int(val.steps[-1]),
               f"train loss fell {t.head:.3g} -> {t.tail:.3g} while val loss stayed near {val_end:.3g} "
               f"(second half: train {100 * train_fall:.0f}% lower, val {100 * val_fall:.0f}%); the gap grew "
               f"{gap_start:.2g} -> {gap_end:.2g}")


def _regularise(run: Settings) -> list[str]:
    decay = max(0.1, 2 * run.weight_decay) if run.weight_decay else 0.1
    return [f"--model.init_args.optimizer.weight_decay {decay:.3g}",
            "add more training data (or augmentation) so the model cannot memorise it", "--early_stopping.patience 3"]


def _stop_at_best(hit: Hit) -> str:
    epoch = hit.stop_epoch
    return f"--trainer.max_epochs {epoch + 1}" if epoch is not None else "--trainer.max_epochs <best epoch + 1>"


INPUT_BOUND = 0.3  # waiting for data over 30% of the step time: faster loading would speed the run by over 1.4x
MIN_INPUT_WAIT_S = 0.5  # a run that waited less than this for its batches in all has nothing worth winning back


def _input_bound(e: Evidence) -> Hit | None:
    wait = e.curves.data_wait.finite()
    values, steps = wait.values[1:], wait.steps[1:]  # the first window includes starting the loader's workers
    share = float(np.median(values)) if len(values) >= 2 else 0.0
    if share < INPUT_BOUND:
        return None
    step_time = e.curves.step_time.finite()
    # A tiny model's millisecond steps spend a third of their time in the loader's Python, more on a busy machine.
    if len(step_time) and (share * float(np.median(step_time.values))
                           * (steps[-1] - wait.steps[0] + 1)) < MIN_INPUT_WAIT_S:
        return None
    return Hit(int(steps[0]), int(steps[-1]), f"the loop waited for the next batch {100 * share:.0f}% of the step time "
               f"(median of {len(values)} logging windows)")


def _sync_bound(e: Evidence) -> Hit | None:
    syncs = e.curves.syncs.finite()
    if not len(syncs) or float(np.median(syncs.values)) < 1:
        return None
    return Hit(int(syncs.steps[0]), int(syncs.steps[-1]), f"{float(np.median(syncs.values)):.1f} host-device "
               "synchronisations per training step on steps that are not logged: the GPU queue drains every step")


_DATA = ("--data.init_args", "--data.init_args.data.init_args")  # a DataModule, or one wrapped (class-balanced)


def _more_workers() -> list[str]:
    import os

    workers = min(8, max(2, (os.cpu_count() or 2) - 1))  # one core left to the loop
    return [f"{data}.num_workers {workers}" for data in _DATA]


# These describe the whole curve; milder rules would restate them.
_WHOLE_TRAIN_CURVE = ("diverged", "diverging", "oscillating")
_WHOLE_RUN = ("diverged", "diverging", "flat")  # with training itself broken, validation says nothing more

CASES: dict[str, Case] = {case.name: case for case in (
    Case("nan", "NaN loss",
         ("exploding gradients", "log or division by zero in the loss", "NaN/Inf in the data", "fp16 overflow"),
         _nan, lambda hit, run: [run.clip(), run.lr_times(0.1, "<LR/10>"), "--trainer.precision 32-true",
                                 SKIP_NONFINITE],
         color="black", needs_trend=False),
    Case("diverging", "diverging", ("LR too high", "exploding gradients", "bad data", "no input normalisation"),
         _diverging, lambda hit, run: [run.lr_times(0.1, "<LR/10>"), run.clip(),
                                       "--model.init_args.scheduler.warmup 0.05"],
         color="red"),
    Case("diverged", "diverged (loss far above chance)",
         ("LR far too high", "exploding gradients", "no input normalisation"),
         _diverged, lambda hit, run: [run.lr_times(0.1, "<LR/10>"), run.clip(),
                                      "--model.init_args.scheduler.warmup 0.05",
                                      "--doctor.preflight true (it stops such a run in its first seconds)"],
         color="red", needs_trend=False, superseded_by=("nan", "diverging")),
    Case("oscillating", "oscillating", ("LR too high", "batch too small", "poor shuffling", "bad samples"),
         _oscillating, lambda hit, run: [run.lr_times(0.1, "<LR/10>"), run.batch_times(4), run.clip()],
         color="purple", superseded_by=("diverging",)),
    Case("jump", "sharp jump", ("non-finite or extreme values in a batch", "outlier samples", "poor shuffling"),
         _jump, lambda hit, run: [run.clip(), SKIP_NONFINITE, "check the batches at the jump for outliers"],
         color="orange", superseded_by=_WHOLE_TRAIN_CURVE),
    Case("slow", "slow decline", ("LR too small", "vanishing gradients"),
         _slow, lambda hit, run: [run.lr_times(10, "<LR*10>"), "--model.init_args.scheduler.name onecycle",
                                  f"{PER_MODULE} (vanishing grads)"],
         color="gold", superseded_by=_WHOLE_TRAIN_CURVE),
    Case("flat", "train and val flat",
         ("wrong loss for the task", "frozen parameters", "LR far too small", "architecture mismatch"),
         _flat, lambda hit, run: [run.lr_times(10, "<LR*10>"), f"{PER_MODULE} (are gradients zero?)",
                                  "check requires_grad and the loss"],
         color="gray", superseded_by=_WHOLE_TRAIN_CURVE),
    Case("val_flat", "val flat while train improves",
         ("label or data-preparation bug in the val split", "train/val distribution shift", "class imbalance"),
         _val_flat, lambda hit, run: ["check val labels and preprocessing match train",
                                      "compare class counts of train and val"],
         color="teal", superseded_by=_WHOLE_RUN),
    Case("overfitting", "overfitting", ("model memorises the training set: too little data or regularisation",),
         _overfitting, lambda hit, run: [
             _stop_at_best(hit), "--early_stopping.patience 3",
             Try("more dropout in the model", ("--model.init_args.drop_rate 0.2", "--model.init_args.dropout 0.3")),
             "--model.init_args.optimizer.weight_decay 0.1",
             Try("augment the training data (or collect more)",
                 tuple(f"{data}.train_transform trainkit.augment.ImageAugment (augmentation)" for data in _DATA))],
         color="tab:blue", superseded_by=_WHOLE_RUN),
    Case("gap", "train/val gap growing", ("the model memorises the training set: too little data or regularisation",),
         _gap, lambda hit, run: _regularise(run), color="cyan",
         superseded_by=(*_WHOLE_RUN, "oscillating", "val_flat", "overfitting")),
    Case("unfinished", "unfinished (still improving)", ("the schedule ended before the model converged",),
         _unfinished, lambda hit, run: _longer(run), color="green", needs_trend=False,
         superseded_by=("nan", *_WHOLE_RUN, "oscillating")),
    Case("input_bound", "input-bound",
         ("too few loader workers", "slow decoding or augmentation", "slow storage",
          "no pinned memory for host-to-device copies"),
         _input_bound, lambda hit, run: [
             Try("more DataLoader workers", tuple(_more_workers())),
             "pin_memory=True and persistent_workers=True in the DataLoader (trainkit's DataModules set both where "
             "they pay: CUDA, workers > 0)", "lighter augmentation or decoding in the DataModule",
             "cache decoded samples, or stream them from local disk (litdata)"],
         color="brown", needs_trend=False),
    Case("sync_bound", "sync-bound",
         ("a .item(), .cpu(), .tolist(), print(tensor) or bool(tensor) every step in the task or a callback",
          f"{SKIP_NONFINITE} (it reads the loss every step)"),
         _sync_bound, lambda hit, run: [
             "torch.cuda.set_sync_debug_mode('warn') names each synchronising line",
             "log with self.log(...) instead of reading values every step", "--nan_guard.action stop"],
         color="olive", needs_trend=False),
    # Layer health (`--layer_health.every_n_steps`): read per block, so they need no loss trend.
    Case("dead_layer", "dead layer (ReLU units silent)",
         ("LR too high (one large update pushes units below zero for good)", "a large negative bias or a bad init "
          "before the ReLU", "no normalisation before the ReLU"),
         dead, lambda hit, run: [run.lr_times(0.1, "<LR/10>"), "LeakyReLU or GELU in place of ReLU",
                                 "--weight_init.scheme kaiming (He init, biases at 0)", run.clip()],
         color="dimgray", needs_trend=False),
    Case("saturated_layer", "saturated layer (sigmoid/tanh on their tails)",
         ("pre-activations too large: weights initialised too big or grown by a high LR", "no normalisation before "
          "the sigmoid/tanh"),
         saturated, lambda hit, run: ["--weight_init.scheme xavier (Glorot init for sigmoid/tanh)",
                                      "a LayerNorm/BatchNorm before the activation", "ReLU or GELU in hidden layers",
                                      run.lr_times(0.1, "<LR/10>")],
         color="darkkhaki", needs_trend=False),
    Case("vanishing_grads", "vanishing gradients by depth",
         ("a deep stack without normalisation or residual connections", "saturating activations (sigmoid/tanh)",
          "an init too small for the depth"),
         vanishing, lambda hit, run: ["normalisation (BatchNorm/LayerNorm) in each block",
                                      "residual connections around the blocks", "ReLU or GELU instead of sigmoid/tanh",
                                      "--weight_init.scheme kaiming"],
         color="slateblue", needs_trend=False, superseded_by=("dead_layer",)),
    Case("exploding_grads", "exploding gradients by depth",
         ("a deep stack without normalisation", "an init too large for the depth", "LR too high"),
         exploding, lambda hit, run: [run.clip(), run.lr_times(0.1, "<LR/10>"), "--weight_init.scheme xavier",
                                      "normalisation (BatchNorm/LayerNorm) in each block"],
         color="crimson", needs_trend=False),
)}
"""Case name -> its record, in the order the cases are looked for."""

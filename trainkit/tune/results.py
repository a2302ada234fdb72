"""What a study leaves for people: the trials table (printed and trials.csv), best.yaml and Optuna's plots."""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from trainkit.tune import study as studies
from trainkit.tune.trial import VALUE, TrialReporter

TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
PLOTS = "plots"
REPORTER = f".{TrialReporter.__name__}"


def trial_rows(folder: Path, settings: studies.StudySettings) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, params, duration, run folder."""
    trials = studies.load(folder, settings).get_trials(deepcopy=False)
    rows = []
    for trial in trials:
        value = trial.value if trial.value is not None else trial.user_attrs.get(VALUE)
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name.lower(), "value": value}
        row.update({key: trial.params.get(key) for key in settings.space})
        row.update({"duration_s": None if duration is None else round(duration, 1),
                    "run_folder": str(folder / f"trial_{trial.number}"),
                    "baseline": bool(trial.user_attrs.get("baseline"))})
        rows.append(row)
    return rows


def best_row(rows: list[dict[str, Any]], settings: studies.StudySettings) -> dict[str, Any] | None:
    """The completed trial with the best value."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None and math.isfinite(r["value"])]
    if not done:
        return None
    return (max if settings.mode == "max" else min)(done, key=lambda r: r["value"])


def table(rows: list[dict[str, Any]], settings: studies.StudySettings) -> str:
    """The trials as a fixed-width text table, the best one starred."""
    short = {key: key.rsplit(".", 1)[-1] for key in settings.space}
    if len(set(short.values())) < len(short):
        short = {key: key for key in settings.space}
    header = ["#", "state", settings.monitor, *short.values(), "seconds"]
    best = best_row(rows, settings)
    lines = []
    for row in rows:
        mark = ("*" if row is best else "") + (" (config)" if row["baseline"] else "")
        cells = [f"{row['number']}{mark}", row["state"], _fmt(row["value"])]
        cells += [_fmt(row[key]) for key in short]
        cells.append(_fmt(row["duration_s"]))
        lines.append(cells)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=True)]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [header, *lines]]
    return "\n".join(text)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_csv(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """trials.csv, written atomically (runners of one study may finish at the same time)."""
    path = folder / TRIALS_CSV
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["number"])
        writer.writeheader()
        writer.writerows({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()}
                         for row in rows)
    os.replace(tmp, path)
    return path


def write_best(folder: Path, settings: studies.StudySettings, best: dict[str, Any]) -> Path | None:
    """best.yaml: the best trial's saved config (the base config with its values filled in), logging to the base
    experiment again, so `trainkit fit --config best.yaml` reruns it exactly."""
    source = Path(best["run_folder"]) / "config.yaml"
    if not source.is_file():
        return None
    config = yaml.safe_load(source.read_text())
    config["runs_dir"], config["experiment"], config["run_name"] = settings.runs_dir, settings.experiment, None
    trainer = config.get("trainer") or {}
    if isinstance(trainer.get("callbacks"), list):  # the rerun is a plain fit: it reports to no study
        kept = [c for c in trainer["callbacks"] if not str((c or {}).get("class_path", "")).endswith(REPORTER)]
        trainer["callbacks"] = kept or None
    path = folder / BEST_YAML
    note = (f"# Best trial {best['number']} of study '{settings.name}' ({settings.monitor}={best['value']!r}); "
            f"from {source}\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(note + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path


def write_plots(folder: Path, settings: studies.StudySettings) -> list[Path]:
    """Optuna's matplotlib plots: optimization history, parameter importances, slice and intermediate values.
    A plot that needs more trials than there are is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    study = studies.load(folder, settings)
    out = folder / PLOTS
    out.mkdir(exist_ok=True)
    written = []
    named = {"target_name": settings.monitor}
    plots = {"history": (vis.plot_optimization_history, named), "importances": (vis.plot_param_importances, named),
             "slice": (vis.plot_slice, named), "intermediate": (vis.plot_intermediate_values, {})}
    for name, (plot, kwargs) in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study, **kwargs)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two completed trials with different values
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        if name == "slice":  # one panel per parameter, plus the colour bar
            figure.set_size_inches(3.2 * len(settings.space) + 1.5, 4.0)
        path = out / f"{name}.png"
        figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def report(folder: Path, settings: studies.StudySettings, write: bool = True) -> str:
    """The table and where things are; with `write`, also trials.csv, best.yaml and the plots."""
    rows = trial_rows(folder, settings)
    best = best_row(rows, settings)
    states = [r["state"] for r in rows]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("complete", "pruned", "fail", "running") if s in states)
    lines = [f"trainkit tune: study '{settings.name}', {len(rows)}/{settings.n_trials} trials ({counts or 'none yet'})",
             table(rows, settings)]
    baseline = next((r for r in rows if r["baseline"] and r["state"] == "complete"), None)
    if best is not None:
        versus = f" (the config's own values: {baseline['value']:.6g})" if baseline and baseline is not best else ""
        lines.append(f"best: trial {best['number']}, {settings.monitor}={best['value']:.6g}{versus}")
    if write and rows:
        lines.append(f"  trials   {write_csv(folder, rows)}")
        if best is not None and (path := write_best(folder, settings, best)) is not None:
            lines.append(f"  best     {path} (trainkit fit --config {path})")
        plots = write_plots(folder, settings)
        if plots:
            lines.append(f"  plots    {', '.join(str(p) for p in plots)}")
    return "\n".join(lines)

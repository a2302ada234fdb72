"""Runs side by side: their best and test metrics, the config keys that differ (and only those), and one PNG of
their training and validation curves on a common step axis."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

from trainkit.reports._plot import pyplot, save
from trainkit.reports.summary import RunSummary
from trainkit.reports.table import duration, format_table, number

UNSET = "<unset>"
NOT_IN_LEGEND = {"run_name", "ckpt_path"}
"""Keys that differ between runs without making their curves differ."""


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"model.init_args.optimizer.lr": 0.003, ...}; lists stay whole values."""
    if not isinstance(config, dict) or (prefix and not config):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differing_keys(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The dotted keys whose values are not the same in every config (a key one config lacks counts as differing)."""
    flats = [flatten(config) for config in configs]
    table = {key: [flat.get(key, UNSET) for flat in flats] for key in sorted(set().union(*flats))}
    return {key: values for key, values in table.items() if len({repr(value) for value in values}) > 1}


def labels(summaries: list[RunSummary]) -> list[str]:
    """Column names: the run folder, prefixed by the experiment when the runs come from several."""
    several = len({s.experiment for s in summaries}) > 1
    return [f"{s.experiment}/{s.run_dir.name}" if several else s.run_dir.name for s in summaries]


def legend_labels(summaries: list[RunSummary], most: int = 3) -> list[str]:
    """Curve names: the values that differ between the runs (`lr=0.01, max_epochs=2`), else the run folders."""
    differ = {key: values for key, values in differing_keys([s.config for s in summaries]).items()
              if key.rsplit(".", 1)[-1] not in NOT_IN_LEGEND}
    if not differ:
        return labels(summaries)
    short = {key: key.rsplit(".", 1)[-1] for key in differ}
    if len(set(short.values())) < len(short):
        short = {key: key for key in differ}
    keys = list(differ)[:most]
    names = [", ".join(f"{short[key]}={_short(differ[key][i])}" for key in keys) for i in range(len(summaries))]
    if len(set(names)) < len(names):  # more keys differ than are shown: keep the run folder to tell them apart
        names = [f"{run}: {name}" for run, name in zip(labels(summaries), names, strict=True)]
    return names


def default_plot_path(summaries: list[RunSummary]) -> Path:
    """compare_<run>_<run>....png in the folder holding the runs' experiments: another set of runs, another file."""
    common = Path(os.path.commonpath([s.run_dir.parent for s in summaries]))
    stem = "compare_" + "_".join(name.replace("/", "-") for name in labels(summaries))
    if len(stem) > 100:
        stem = f"compare_{len(summaries)}_runs_{hashlib.sha1(stem.encode()).hexdigest()[:8]}"
    return common / f"{stem}.png"


def comparison_text(summaries: list[RunSummary]) -> str:
    """The metrics table, then the config keys that differ."""
    names = labels(summaries)
    rows: list[list[Any]] = [
        ["state", *(s.state for s in summaries)],
        ["epochs / steps", *(f"{s.epochs if s.epochs is not None else '-'} / {s.steps if s.steps is not None else '-'}"
                             for s in summaries)],
        ["duration", *(duration(s.duration_s) for s in summaries)],
    ]
    for monitor in dict.fromkeys(s.monitor for s in summaries):
        rows.append([f"best {monitor}", *(number(s.best) if s.monitor == monitor else "-" for s in summaries)])
    tests = sorted(set().union(*(s.test for s in summaries)), key=lambda k: (k.count("_"), k))
    rows += [[key, *(number(s.test.get(key)) for s in summaries)] for key in tests]
    text = format_table(["", *names], rows)
    differ = differing_keys([s.config for s in summaries])
    if differ:
        text += "\n\nconfig keys that differ\n" + format_table(
            ["key", *names], [[key, *(_short(v) for v in values)] for key, values in differ.items()], indent="  ")
    else:
        text += "\n\nconfig: identical in every run"
    return text


def plot_curves(summaries: list[RunSummary], path: Path) -> Path:
    """Training loss, validation loss and each monitored metric of every run, against the global step."""
    panels = ["train/loss_step", "val/loss", *dict.fromkeys(s.monitor for s in summaries if s.monitor != "val/loss")]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, key in zip(axes[0], panels, strict=True):
        for index, (summary, name) in enumerate(zip(summaries, legend_labels(summaries), strict=True)):
            fallback = "train/loss" if key == "train/loss_step" else key  # a run logging the loss per epoch only
            series = summary.metrics.get(key, summary.metrics.get(fallback))
            if series is not None and len(series):
                series = series.finite()
                marker = "" if len(series) > 30 else "o"
                ax.plot(series.steps, series.values, marker=marker, markersize=3, color=colors(index % 10), label=name)
        ax.set_title(key.removesuffix("_step"), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{len(summaries)} runs compared")
    fig.tight_layout()
    return save(fig, path)


def _short(value: Any) -> str:
    text = " ".join(str(value).split()) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."

"""The doctor's report: a short table for the terminal, `doctor.md`, and `doctor.png` with the findings marked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainkit.doctor.cases import CASES
from trainkit.doctor.curves import Curves, Series, load_curves, resolve_run_dir
from trainkit.doctor.diagnosis import Finding, diagnose
from trainkit.doctor.layer_plot import LAYERS_PLOT_FILE, plot_layers
from trainkit.doctor.spikes import read_spikes, spikes_line
from trainkit.hpc.stacks import stacks_line

REPORT_FILE = "doctor.md"
PLOT_FILE = "doctor.png"


@dataclass
class Report:
    """A diagnosed run: its folder, curves, findings and the files written."""

    run_dir: Path
    curves: Curves
    findings: list[Finding]
    markdown: Path | None = None
    plot: Path | None = None
    spikes: list[dict] = field(default_factory=list)
    """Loss spikes the spike guard caught (spikes.jsonl)."""

    @property
    def healthy(self) -> bool:
        """No finding."""
        return not self.findings


def examine(run_dir: str | Path, write: bool = True) -> Report:
    """Diagnose a run folder (or the newest run of an experiment folder) and write doctor.md and doctor.png."""
    folder = resolve_run_dir(run_dir)
    curves = load_curves(folder)
    report = Report(folder, curves, diagnose(curves), spikes=read_spikes(folder))
    if write:
        report.markdown = folder / REPORT_FILE
        report.markdown.write_text(markdown(report))
        report.plot = plot(curves, report.findings, folder / PLOT_FILE)
        plot_layers(curves, folder / LAYERS_PLOT_FILE)
    return report


def table(report: Report) -> str:
    """The terminal summary: one row per finding, with what to try beneath it."""
    curves = report.curves
    points = f"{len(curves.train)} train and {len(curves.val)} val points"
    stacks = stacks_line(report.run_dir)
    extra = [f"  {line}" for line in ([spikes_line(report.spikes)] if report.spikes else []) + [stacks] if line]
    if report.healthy:
        return "\n".join([f"trainkit doctor: {report.run_dir}: healthy (no problem found in {points})", *extra])
    lines = [f"trainkit doctor: {report.run_dir}: {len(report.findings)} finding(s) in {points}",
             f"  {'case':<30} {'steps':<13} evidence"]
    for finding in report.findings:
        lines.append(f"  {finding.title:<30} {f'{finding.start}-{finding.end}':<13} {finding.evidence}")
        lines.append(f"  {'':<30} {'likely:':<13} {'; '.join(finding.causes)}")
        lines.append(f"  {'':<30} {'try:':<13} {'   '.join(finding.flags)}")
    return "\n".join(lines + extra)


def markdown(report: Report) -> str:
    """doctor.md: the findings as a table, then each finding's causes and flags."""
    lines = [f"# trainkit doctor: {report.run_dir.name}", ""]
    if report.healthy:
        lines += [f"**Healthy**: no problem found in {len(report.curves.train)} logged training losses and "
                  f"{len(report.curves.val)} validations.", ""]
    else:
        lines += ["| case | steps | evidence |", "|---|---|---|"]
        lines += [f"| {f.title} | {f.start}-{f.end} | {f.evidence} |" for f in report.findings]
        lines.append("")
        for finding in report.findings:
            lines += [f"## {finding.title}", "", f"Likely causes: {'; '.join(finding.causes)}.", "", "Try:", ""]
            lines += [f"- `{flag}`" if flag.startswith("--") else f"- {flag}" for flag in finding.flags]
            lines.append("")
    if report.spikes:
        lines += [spikes_line(report.spikes), ""]
    stacks = stacks_line(report.run_dir)
    if stacks:
        lines += ["## Stacks", "", stacks.removeprefix("trainkit: "), ""]
    lines += [f"![curves]({PLOT_FILE})", ""]
    if report.curves.layers:
        lines += [f"![layer health]({LAYERS_PLOT_FILE})", ""]
    return "\n".join(lines)


def plot(curves: Curves, findings: list[Finding], path: Path) -> Path:
    """Train/val loss, the monitored metric and the LR on one step axis, each finding's steps shaded."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, (loss_ax, monitor_ax, lr_ax) = plt.subplots(3, 1, sharex=True, figsize=(9, 8), height_ratios=[3, 2, 1.2])
    train = curves.train.finite()
    if len(train):
        loss_ax.plot(train.steps, train.values, lw=0.8, alpha=0.5, label=curves.train.name)
        if len(train) >= 5:
            loss_ax.plot(train.steps, _smooth(train.values), lw=1.6, color="tab:blue", label="train (smoothed)")
    _line(loss_ax, curves.val, "val/loss", "tab:orange")
    if len(train) and np.nanmax(train.values) / max(np.nanmin(np.abs(train.values)), 1e-12) > 100:
        loss_ax.set_yscale("log")  # a diverging or NaN-bound run spans decades
    loss_ax.set_ylabel("loss")
    if curves.monitor.name != curves.val.name:
        _line(monitor_ax, curves.monitor, curves.monitor.name, "tab:green")
    monitor_ax.set_ylabel(f"{curves.monitor.name} ({curves.monitor_mode})")
    _line(lr_ax, curves.lr, "train/lr", "tab:red", marker=None)
    lr_ax.set_ylabel("LR")
    lr_ax.set_xlabel("step")
    for finding in findings:
        color = CASES[finding.case].color
        for ax in (loss_ax, monitor_ax, lr_ax):
            ax.axvspan(finding.start, max(finding.end, finding.start + 1), color=color, alpha=0.12)
        loss_ax.text(finding.start, 1.0, f" {finding.title}", transform=loss_ax.get_xaxis_transform(),
                     va="top", fontsize=8, color=color)
    for step in curves.nonfinite_steps:
        loss_ax.axvline(step, color="black", lw=0.8, ls="--")
    for ax in (loss_ax, monitor_ax, lr_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    verdict = "healthy" if not findings else ", ".join(f.title for f in findings)
    fig.suptitle(f"trainkit doctor: {verdict}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _line(ax, series: Series, label: str, color: str, marker: str | None = "o") -> None:  # noqa: ANN001
    finite = series.finite()
    if len(finite):
        ax.plot(finite.steps, finite.values, color=color, marker=marker, ms=3, lw=1.2, label=label)


def _smooth(values: np.ndarray) -> np.ndarray:
    window = max(3, len(values) // 20)
    return np.asarray([np.median(values[max(0, i - window // 2): i + window // 2 + 1]) for i in range(len(values))])

"""`trainkit compare RUN RUN ... | EXPERIMENT`: best and test metrics side by side, the config keys that differ
(only those), and compare.png overlaying the runs' training and validation curves."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trainkit.errors import ConfigError
from trainkit.reports.summary import find_runs, summarize


def main(argv: list[str]) -> None:
    """Run `trainkit compare`."""
    parser = argparse.ArgumentParser(prog="trainkit compare", description=(__doc__ or "").split(":", 1)[1].strip())
    parser.add_argument("targets", nargs="+", help="run folders, or an experiment (name or folder) for all its runs")
    parser.add_argument("--runs_dir", default="runs", help="where experiment names are looked up")
    parser.add_argument("--out", type=Path, default=None,
                        help="curves PNG (default: compare.png in the folder holding the runs' experiments)")
    args = parser.parse_args(argv)
    runs = list(dict.fromkeys(run.resolve() for target in args.targets for run in find_runs(target, args.runs_dir)))
    if len(runs) < 2:
        raise ConfigError(f"trainkit compare needs at least two runs, found {len(runs)} in {' '.join(args.targets)}; "
                          "pass two run folders or an experiment with several runs")
    from trainkit.reports.compare import comparison_text, plot_curves

    summaries = [summarize(run) for run in runs]
    print(comparison_text(summaries))
    common = Path(os.path.commonpath([run.parent for run in runs]))
    out = args.out or common / "compare.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"\ncurves: {plot_curves(summaries, out)}")

"""`trainkit compare RUN RUN ... | EXPERIMENT`: best and test metrics side by side, the config keys that differ
(only those), and a PNG overlaying the runs' training and validation curves, named by the values that differ."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainkit.errors import ConfigError
from trainkit.reports.summary import find_runs, summarize


def main(argv: list[str]) -> None:
    """Run `trainkit compare`."""
    parser = argparse.ArgumentParser(prog="trainkit compare", description=(__doc__ or "").split(":", 1)[1].strip())
    parser.add_argument("targets", nargs="+", help="run folders, or an experiment (name or folder) for all its runs")
    parser.add_argument("--runs_dir", default="runs", help="where experiment names are looked up")
    parser.add_argument("--out", type=Path, default=None, help="where the curves PNG goes (default: "
                        "compare_<run>_<run>.png in the folder holding the runs' experiments)")
    parser.add_argument("--json", action="store_true", help="print the runs and the differing config keys as JSON")
    args = parser.parse_args(argv)
    runs = list(dict.fromkeys(run.resolve() for target in args.targets for run in find_runs(target, args.runs_dir)))
    if len(runs) < 2:
        raise ConfigError(f"trainkit compare needs at least two runs, found {len(runs)} in {' '.join(args.targets)}; "
                          "pass two run folders or an experiment with several runs")
    from trainkit.reports.compare import comparison_text, default_plot_path, differing_keys, plot_curves

    summaries = [summarize(run) for run in runs]
    out = args.out or default_plot_path(summaries)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.json:
        from trainkit.reports.as_json import run_record, to_json

        plot = plot_curves(summaries, out)
        print(to_json({"runs": [run_record(s) for s in summaries],
                       "differ": differing_keys([s.config for s in summaries]), "curves": plot}))
        return
    print(comparison_text(summaries))
    print(f"\ncurves: {plot_curves(summaries, out)}")

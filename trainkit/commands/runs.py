"""`trainkit runs [RUNS_DIR | EXPERIMENT | RUN_DIR]`: one row per run (state, length, best and test metrics,
duration, time left for a running run, start); for a single run folder, also its provenance (command, code,
versions, host, devices, job)."""

from __future__ import annotations

import argparse

from trainkit.reports.summary import RunSummary, find_runs, summarize
from trainkit.reports.table import duration, format_table, number

TEST_SHOWN = 3
"""Test metrics per row; the one matching the monitor comes first, then test/loss."""


def main(argv: list[str]) -> None:
    """Run `trainkit runs`."""
    parser = argparse.ArgumentParser(prog="trainkit runs", description=(__doc__ or "").split(":", 1)[1].strip())
    parser.add_argument("target", nargs="?", default=None,
                        help="a runs folder (default ./runs), an experiment name or folder, or one run folder")
    parser.add_argument("--runs_dir", default="runs", help="where experiment names are looked up")
    parser.add_argument("--json", action="store_true", help="print the runs, with their provenance, as JSON")
    args = parser.parse_args(argv)
    summaries = [summarize(run) for run in find_runs(args.target, args.runs_dir)]
    if args.json:
        from trainkit.reports.as_json import run_record, to_json

        print(to_json([run_record(s) for s in summaries]))
        return
    print(runs_table(summaries))
    if len(summaries) == 1:
        print("\n" + provenance_text(summaries[0]))


def runs_table(summaries: list[RunSummary]) -> str:
    """The table `trainkit runs` prints."""
    header = ["experiment", "run", "state", "epochs", "steps", "best", "test", "duration", "eta", "started"]
    rows = []
    for s in summaries:
        best = f"{s.monitor}={number(s.best)}" if s.best is not None else "-"
        started = s.started.strftime("%Y-%m-%d %H:%M") if s.started else "-"
        rows.append([s.experiment, s.run_dir.name, s.state, _count(s.epochs), _count(s.steps), best, _test_cell(s),
                     duration(s.duration_s), duration(s.eta_s), started])
    return format_table(header, rows)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _test_cell(summary: RunSummary) -> str:
    counterpart = "test/" + summary.monitor.split("/", 1)[-1]
    order = sorted(summary.test, key=lambda k: (k != counterpart, k != "test/loss", k.count("_"), k))
    return " ".join(f"{key.removeprefix('test/')}={number(summary.test[key])}" for key in order[:TEST_SHOWN]) or "-"


def provenance_text(summary: RunSummary) -> str:
    """A run's provenance, one fact a line."""
    record = summary.provenance
    if not record:
        return f"{summary.run_dir}: no provenance.json (a run made before trainkit recorded one)"
    git = record.get("git")
    code = "not a git repository"
    if git:
        dirty = f"dirty, {git.get('changed_files')} changed paths" if git.get("dirty") else "clean"
        code = f"{git['commit'][:12]} on {git.get('branch')} ({dirty})"
    versions = ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items())
    devices = record.get("devices") or {}
    lines = [
        ("command", record.get("command")),
        ("cwd", record.get("cwd")),
        ("git", code),
        ("versions", versions),
        ("host", f"{record.get('host')} (pid {record.get('pid')})"),
        ("devices", ", ".join(f"{k} {v}" for k, v in devices.items())),
        ("slurm job", record.get("slurm_job_id") or "-"),
        ("state", f"{summary.state} ({record.get('stage', '-')})"),
        ("started", record.get("first_started") or record.get("started")),
        ("ended", record.get("ended") or "-"),
    ]
    if record.get("error"):
        lines.append(("error", record["error"]))
    if record.get("history"):
        lines.append(("earlier", f"{len(record['history'])} attempt(s) before this one (resumed)"))
    return f"provenance of {summary.run_dir}\n" + "\n".join(f"  {key:<10} {value}" for key, value in lines)

"""`trainkit doctor RUN_DIR`: diagnose a run's logged curves; prints a table, writes doctor.md and doctor.png."""

from __future__ import annotations

from trainkit.errors import ConfigError


def main(argv: list[str]) -> None:
    """Diagnose the run in RUN_DIR (or the newest run of an experiment folder)."""
    if not argv or any(arg in ("-h", "--help") for arg in argv):
        print("usage: trainkit doctor RUN_DIR [--json]\n\n" + (__doc__ or "").strip()
              + "\n\n  --json  print the findings (case, steps, evidence, causes, flags) as JSON")
        return
    as_json = "--json" in argv
    argv = [arg for arg in argv if arg != "--json"]
    if len(argv) != 1:
        raise ConfigError(f"trainkit doctor takes one run folder, got {len(argv)} arguments; pass RUN_DIR only")
    from trainkit.doctor.report import examine, table

    report = examine(argv[0])
    if as_json:
        from trainkit.reports.as_json import to_json

        print(to_json({"run_dir": report.run_dir, "healthy": report.healthy, "report": report.markdown,
                       "plot": report.plot, "findings": [{"title": f.title, **vars(f)} for f in report.findings]}))
        return
    print(table(report))
    print(f"  report: {report.markdown}\n  plot:   {report.plot}")

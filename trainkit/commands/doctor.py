"""`trainkit doctor RUN_DIR`: diagnose a run's logged curves; prints a table, writes doctor.md and doctor.png."""

from __future__ import annotations

from trainkit.errors import ConfigError


def main(argv: list[str]) -> None:
    """Diagnose the run in RUN_DIR (or the newest run of an experiment folder)."""
    if not argv or any(arg in ("-h", "--help") for arg in argv):
        print("usage: trainkit doctor RUN_DIR\n\n" + (__doc__ or "").strip())
        return
    if len(argv) != 1:
        raise ConfigError(f"trainkit doctor takes one run folder, got {len(argv)} arguments; pass RUN_DIR only")
    from trainkit.doctor.report import examine, table

    report = examine(argv[0])
    print(table(report))
    print(f"  report: {report.markdown}\n  plot:   {report.plot}")

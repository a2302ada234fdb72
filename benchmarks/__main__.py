"""`python -m benchmarks [--smoke] [--only overhead,startup,int8,cuda,input_pipeline]`: run the suite, one table.

--smoke runs every benchmark for seconds (CI checks that they work; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

import torch

SECTIONS = ("overhead", "startup", "int8", "cuda", "input_pipeline")
COLUMNS = ("benchmark", "hand loop", "trainkit", "ratio", "target")


def print_table(rows: list[dict[str, str]]) -> None:
    """Rows as an aligned text table; `hand loop` is the reference column, `trainkit` ours."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    print("  ".join("-" * widths[c] for c in COLUMNS))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in COLUMNS))


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    """Run the chosen sections, print the table, return its rows."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long run of every benchmark (CI)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = parser.parse_args(argv)
    start, rows = time.perf_counter(), []
    for name in args.only.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section '{name}'; choose from {', '.join(SECTIONS)}")
        section = importlib.import_module(f"benchmarks.{name}")
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        section_rows = section.run(smoke=args.smoke)
        if name == "cuda" and not section_rows:
            section_rows = [{"benchmark": "CUDA table", "trainkit": "no CUDA device here; see benchmarks/RESULTS.md"}]
        rows += section_rows
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    smoke = " (SMOKE: numbers mean nothing)" if args.smoke else ""
    print(f"\ntrainkit benchmarks{smoke}: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {load:.1f} at the end, {time.perf_counter() - start:.0f} s")
    print_table(rows)
    print("\nvs hand loop: same model/data/batch/optimizer/fp32/steps on every side, torchmetrics updates included; "
          "'bare Lightning' is the same task module in a Trainer with no loggers, checkpoints, progress bar or "
          "trainkit callbacks; 'trainkit fit' adds all of those, as a user gets them "
          "(benchmarks/overhead.py says exactly what each side does).")
    return rows


if __name__ == "__main__":
    main()

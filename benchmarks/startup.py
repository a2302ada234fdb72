"""Start-up: `trainkit --help` and a 1-step `trainkit fit` against the bare `import lightning.pytorch`.

Each command runs in a fresh Python process (as a user types it); the figures are the median wall time of repeats,
alternating the commands so that a busy machine slows all of them alike, and beside it the median CPU time (user +
system) of the process, which a shared machine barely changes.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_STEP_FIT = [
    "fit", "--config", str(REPO / "configs" / "classification" / "digits.yaml"),
    "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
    "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
    "--model.init_args.scheduler.name", "constant",  # one-cycle refuses a 1-step run
]
SMOKE_FLAGS = ["--doctor.overfit_steps", "0", "--doctor.diagnose", "false"]  # the smoke proves the command runs


def _wall_and_cpu(args: list[str], cwd: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - start, cpu


def _in_this_process(args: list[str], cwd: str) -> tuple[float, float]:
    """The smoke's fit, run in this process: what can go stale is its flags, which this proves as well as a fresh
    interpreter would (that costs ~7 s of CPU more, and a smoke's figures mean nothing)."""
    from trainkit.console import main

    before, start, back = time.process_time(), time.perf_counter(), os.getcwd()
    os.chdir(cwd)
    try:
        main(args)
    finally:
        os.chdir(back)
    return time.perf_counter() - start, time.process_time() - before


def _medians(values: list[tuple[float, float]]) -> tuple[float, float]:
    """(median wall, median CPU) of (wall, CPU) pairs."""
    return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)


def run(smoke: bool = False) -> list[dict[str, str]]:
    """Rows: import floor, --help and 1-step fit, with the difference to the floor."""
    commands = {
        "python -c 'import lightning.pytorch'": ["-c", "import lightning.pytorch"],
        "trainkit --help": ["-m", "trainkit", "--help"],
        "trainkit fit (1 step, test_resnet, 16 px)": ["-m", "trainkit", *ONE_STEP_FIT],
    }
    repeats = 1 if smoke else 5
    if smoke:  # the fit's flags are what can go stale; each other command would only cost a fresh interpreter
        commands = {name: args for name, args in commands.items() if "fit" in name}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):
            for name, args in commands.items():
                measure = _in_this_process([*ONE_STEP_FIT, *SMOKE_FLAGS], cwd) if smoke else _wall_and_cpu(args, cwd)
                times[name].append(measure)
    floor_name = "python -c 'import lightning.pytorch'"
    floor = _medians(times[floor_name]) if floor_name in times else None  # smoke: the fit alone, no floor
    rows = []
    for name, values in times.items():
        (median, cpu), is_floor = _medians(values), name == floor_name
        against = floor is not None and not is_floor
        rows.append({
            "benchmark": f"start-up, {name}",
            "hand loop": f"floor {floor[0]:.2f} s (cpu {floor[1]:.2f} s)" if against else "",
            "trainkit": f"{median:.2f} s (cpu {cpu:.2f} s)" + (" in this process (smoke)" if smoke else ""),
            "ratio": "floor" if is_floor else (
                f"{median - floor[0]:+.2f} s (cpu {cpu - floor[1]:+.2f} s)" if against else ""),
            "target": "<= +0.5 s" if "help" in name else "",
        })
    return rows

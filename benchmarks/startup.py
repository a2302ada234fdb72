"""Start-up: `trainkit --help` and a 1-step `trainkit fit` against the bare `import lightning.pytorch`.

Each command runs in a fresh Python process (as a user types it); the figure is the median wall time of repeats,
alternating the commands so that a busy machine slows all of them alike.
"""

from __future__ import annotations

import os
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


def _wall(args: list[str], cwd: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


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
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):
            for name, args in commands.items():
                times[name].append(_wall([*args, *SMOKE_FLAGS] if smoke and "fit" in name else args, cwd))
    floor = statistics.median(times.get("python -c 'import lightning.pytorch'") or [float("nan")])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        is_floor = name.startswith("python")
        rows.append({
            "benchmark": f"start-up, {name}",
            "hand loop": "" if is_floor else f"floor {floor:.2f} s",
            "trainkit": f"{median:.2f} s",
            "ratio": "floor" if is_floor else f"+{median - floor:.2f} s",
            "target": "<= +0.5 s" if "help" in name else "",
        })
    return rows

"""Plain vs regularized digits: test accuracy and the train/test gap of each run's best checkpoint, over seeds.

    python benchmarks/digits_regularization.py --seeds 0 1 2 --parallel 3 --out runs/regularization

Each config is trained with `trainkit fit`; then every best checkpoint is evaluated in eval mode on the clean
(un-augmented) train, val and test splits, so the gap measures overfitting rather than augmentation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "plain": REPO / "configs/classification/digits.yaml",
    "regularized": REPO / "configs/classification/digits_regularized.yaml",
}


def train(name: str, seed: int, out: Path, extra: list[str]) -> subprocess.Popen:
    """Start one `trainkit fit` run in the background; its log goes beside its run folder."""
    out.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "trainkit", "fit", "--config", str(CONFIGS[name]), "--seed_everything", str(seed),
            "--runs_dir", str(out), "--experiment", f"{name}_seed{seed}", "--run_name", "run",
            "--trainer.enable_progress_bar", "false", *extra]
    log = (out / f"{name}_seed{seed}.log").open("w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


@torch.no_grad()
def evaluate(checkpoint: Path) -> dict[str, float]:
    """Accuracy and cross-entropy (no smoothing) of a checkpoint on the clean train/val/test splits."""
    from trainkit.data import DigitsDataModule
    from trainkit.tasks import ClassificationModule

    model = ClassificationModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = DigitsDataModule(image_size=32, in_chans=1)
    data.setup()
    result = {}
    for split, dataset in data.splits.items():
        logits = torch.cat([model(x) for x in dataset.images.split(256)])
        result[f"{split}_acc"] = (logits.argmax(1) == dataset.labels).float().mean().item()
        result[f"{split}_loss"] = F.cross_entropy(logits, dataset.labels).item()
    result["gap_acc"] = result["train_acc"] - result["test_acc"]
    result["gap_loss"] = result["test_loss"] - result["train_loss"]
    return result


def main() -> None:
    """Train both configs for each seed, evaluate, print a table and write results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=Path("runs/regularization"))
    parser.add_argument("extra", nargs="*", help="flags passed to every run, after --")
    args = parser.parse_args()
    jobs = [(name, seed) for seed in args.seeds for name in CONFIGS]
    running: list[tuple[str, int, subprocess.Popen, float]] = []
    seconds: dict[str, float] = {}
    while jobs or running:
        while jobs and len(running) < args.parallel:
            name, seed = jobs.pop(0)
            running.append((name, seed, train(name, seed, args.out, args.extra), time.time()))
        for item in list(running):
            name, seed, process, start = item
            if process.poll() is not None:
                running.remove(item)
                seconds[f"{name}_seed{seed}"] = time.time() - start
                if process.returncode:
                    print(f"{name} seed {seed} failed ({process.returncode}); see its log", flush=True)
        time.sleep(1)
    rows = []
    for run, wall in sorted(seconds.items()):
        checkpoint = args.out / run / "run" / "checkpoints" / "best.ckpt"
        if checkpoint.exists():
            rows.append({"run": run, "wall_s": round(wall, 1), **evaluate(checkpoint)})
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"{'run':<22} {'wall_s':>7} {'train_acc':>9} {'val_acc':>8} {'test_acc':>8} {'gap_acc':>8} "
          f"{'train_loss':>10} {'test_loss':>9}")
    for r in rows:
        print(f"{r['run']:<22} {r['wall_s']:>7} {r['train_acc']:>9.4f} {r['val_acc']:>8.4f} {r['test_acc']:>8.4f} "
              f"{r['gap_acc']:>8.4f} {r['train_loss']:>10.4f} {r['test_loss']:>9.4f}")


if __name__ == "__main__":
    main()

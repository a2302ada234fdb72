"""Inference of the digits model in fp32 against its int8 export (`trainkit export --quantize int8`).

Trains the default digits experiment (configs/classification/digits.yaml, shortened to a few epochs here; an MLP
backbone as well, where Linear layers carry the work), quantizes each the way `--quantize int8` does (the CNN
static, calibrated on 8 validation batches; the MLP dynamic), then times both models on the test set (the test
loader's batches of 64, one thread, median of repeats) and at batch 1 and 32, and compares their test accuracy.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainkit.commands.export import load_run, quantize_int8
from trainkit.models.int8 import has_convolutions, quantize_static_int8

REPO = Path(__file__).resolve().parents[1]
DIGITS = str(REPO / "configs" / "classification" / "digits.yaml")
MODELS = {
    "digits resnet18 (default experiment)": [],
    "digits MLP (1024-1024-1024-10)": [
        "--model.init_args.backbone.class_path", "benchmarks.models.SmallMLP",
        "--model.init_args.backbone.init_args.in_features", "1024",
        "--model.init_args.backbone.init_args.hidden", "1024",
    ],
}


def _time(model: torch.nn.Module, batches: tuple[torch.Tensor, ...], repeats: int) -> float:
    with torch.no_grad():
        model(batches[0])
        totals = []
        for _ in range(repeats):
            start = time.perf_counter()
            for x in batches:
                model(x)
            totals.append(time.perf_counter() - start)
    return statistics.median(totals)


def _accuracy(model: torch.nn.Module, batches: tuple[torch.Tensor, ...], labels: tuple[torch.Tensor, ...]) -> float:
    with torch.no_grad():
        hits = sum((model(x).argmax(-1) == y).sum().item() for x, y in zip(batches, labels, strict=True))
    return hits / sum(len(y) for y in labels)


def run(smoke: bool = False) -> list[dict[str, str]]:
    """Rows: per-model fp32 and int8 test-set time and accuracy."""
    from trainkit.console import main

    epochs, repeats = ("1", 1) if smoke else ("8", 7)
    rows = []
    models = list(MODELS.items())[-1:] if smoke else MODELS.items()  # smoke: the MLP; the CNN takes the same path
    for name, extra in models:
        args = ["fit", "--config", DIGITS, *extra, "--trainer.max_epochs", epochs,
                "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"]
        if smoke:
            args += ["--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]  # one-cycle needs 4
        with tempfile.TemporaryDirectory() as runs, contextlib.redirect_stdout(io.StringIO()):
            main([*args, "--runs_dir", runs])
            model, datamodule = load_run(next(Path(runs).glob("digits/version_*/checkpoints/best.ckpt")))
        datamodule.setup("fit")
        static = has_convolutions(model)
        calibration = [b[0] for b, _ in zip(datamodule.val_dataloader(), range(8), strict=False)] if static else []
        int8 = quantize_static_int8(model, calibration) if static else quantize_int8(model)
        datamodule.setup("test")
        x, y = zip(*datamodule.test_dataloader(), strict=True)
        kind = "static" if static else "dynamic"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core: the least disturbed figure on a shared machine
        fp32_s, int8_s = _time(model, x, repeats), _time(int8, x, repeats)
        latency = {n: (_time(model, (x[0][:n],), repeats * 5), _time(int8, (x[0][:n],), repeats * 5)) for n in (1, 32)}
        torch.set_num_threads(threads)
        fp32_acc, int8_acc = _accuracy(model, x, y), _accuracy(int8, x, y)
        rows.append({
            "benchmark": f"int8 export ({kind}), {name}, {sum(len(b) for b in y)} test images, 1 thread",
            "hand loop": f"fp32 {fp32_s * 1e3:.1f} ms, acc {fp32_acc:.2%}",
            "trainkit": f"int8 {int8_s * 1e3:.1f} ms, acc {int8_acc:.2%}",
            "ratio": f"{fp32_s / int8_s:.2f}x faster",
            "target": f"acc change {100 * (int8_acc - fp32_acc):+.2f} pt",
        })
        rows += [{
            "benchmark": f"int8 latency ({kind}), {name}, batch {n}, 1 thread",
            "hand loop": f"fp32 {fp32 * 1e3:.2f} ms", "trainkit": f"int8 {q * 1e3:.2f} ms",
            "ratio": f"{fp32 / q:.2f}x faster", "target": "",
        } for n, (fp32, q) in latency.items()]
    return rows

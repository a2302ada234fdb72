"""fp32 against static/dynamic int8 (as `trainkit export --quantize int8` makes it) for finished runs' checkpoints.

    python -m benchmarks.int8_runs runs/finetune_photos/version_0/checkpoints/best.ckpt runs/photos_distill/...

For each checkpoint: parameters, test accuracy in fp32 and int8 on the run's whole test split, and CPU latency at
batch 1 and 32 on one thread (best of `--repeats`, the figure least disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import torch

from trainkit.commands.export import load_run, quantize_int8
from trainkit.models.int8 import has_convolutions, int8_convolutions, quantize_static_int8


def _best_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _accuracy(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    with torch.no_grad():
        hits = sum((model(x).argmax(-1) == y).sum().item() for x, y in batches)
    return hits / sum(len(y) for _, y in batches)


def measure(ckpt: str, calibration_batches: int = 8, repeats: int = 50) -> dict[str, str]:
    """One row: the checkpoint's fp32 and int8 accuracy and latency."""
    model, datamodule = load_run(ckpt)
    datamodule.setup("fit")
    static = has_convolutions(model)
    calibration = [b[0] for b, _ in zip(datamodule.val_dataloader(), range(calibration_batches), strict=False)]
    int8 = quantize_static_int8(model, calibration) if static else quantize_int8(model)
    datamodule.setup("test")
    test = [(b[0], b[1]) for b in datamodule.test_dataloader()]
    x = torch.cat([b for b, _ in test])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    latency = {n: (_best_ms(model, x[:n], repeats), _best_ms(int8, x[:n], repeats)) for n in (1, 32)}
    torch.set_num_threads(threads)
    return {
        "checkpoint": ckpt,
        "params": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
        "int8": f"static, {int8_convolutions(int8)} int8 convs" if static else "dynamic",
        "test acc fp32 / int8": f"{_accuracy(model, test):.1%} / {_accuracy(int8, test):.1%} (n={len(x)})",
        **{f"batch {n} ms fp32 / int8": f"{a:.2f} / {b:.2f} ({a / b:.2f}x)" for n, (a, b) in latency.items()},
    }


def main(argv: list[str] | None = None) -> None:
    """Print one block per checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_runs", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--calibration_batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    for ckpt in args.checkpoints:
        row = measure(ckpt, args.calibration_batches, args.repeats)
        print("\n".join(f"{key:>24}  {value}" for key, value in row.items()), "\n", flush=True)


if __name__ == "__main__":
    main()

"""Accelerators' peak dense throughput per dtype and memory, for `trainkit plan` and MFU; a measured CPU peak.

Peaks are the vendors' datasheet figures for dense math (without 2:4 sparsity, which the datasheets often quote
doubled); memory is what `nvidia-smi` reports as total, in GiB, a little under the marketed GB.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass

from trainkit.errors import ConfigError, did_you_mean

DTYPES = ("fp32", "tf32", "bf16", "fp16")


@dataclass(frozen=True)
class Device:
    """One accelerator: peak dense TFLOP/s per dtype (None where it has no such math) and its memory."""

    name: str
    memory_gib: float
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float

    def peak_tflops(self, dtype: str) -> float:
        """Peak dense TFLOP/s for `dtype` (fp32/tf32/bf16/fp16); a dtype the device lacks raises ConfigError."""
        if dtype not in DTYPES:
            raise ConfigError(f"dtype '{dtype}' is not known; {did_you_mean(dtype, DTYPES)}choose one of: "
                              f"{', '.join(DTYPES)}")
        peak = getattr(self, dtype)
        if peak is None:
            raise ConfigError(f"{self.name} has no {dtype} math; choose a precision it has (fp16: --trainer.precision "
                              "16-mixed)")
        return peak


DEVICES: dict[str, Device] = {d.name: d for d in (
    # name, memory GiB, fp32, tf32, bf16, fp16 (dense TFLOP/s)
    Device("b200", 179.1, 80.0, 1100.0, 2250.0, 2250.0),
    Device("h200", 140.4, 66.9, 494.7, 989.4, 989.4),
    Device("h100-sxm", 79.6, 66.9, 494.7, 989.4, 989.4),
    Device("h100-pcie", 79.6, 51.2, 378.0, 756.0, 756.0),
    Device("a100-80gb", 80.0, 19.5, 156.0, 312.0, 312.0),
    Device("a100-40gb", 40.0, 19.5, 156.0, 312.0, 312.0),
    Device("l40s", 45.0, 91.6, 183.0, 362.1, 362.1),
    Device("l4", 22.5, 30.3, 60.0, 121.0, 121.0),
    Device("a10g", 22.5, 31.2, 62.5, 125.0, 125.0),  # AWS's A10 variant; NVIDIA's A10 datasheet figures
    Device("a6000", 47.5, 38.7, 77.4, 154.8, 154.8),
    Device("rtx4090", 24.0, 82.6, 82.6, 165.2, 165.2),  # tensor math with fp32 accumulate (what autocast uses)
    Device("v100-32gb", 31.7, 15.7, None, None, 125.0),
    Device("v100-16gb", 15.8, 15.7, None, None, 125.0),
    Device("t4", 15.0, 8.1, None, None, 65.0),
    Device("mi300x", 191.5, 163.4, 653.7, 1307.4, 1307.4),
)}
ALIASES = {"h100": "h100-sxm", "h100-80gb": "h100-sxm", "a100": "a100-80gb", "v100": "v100-32gb", "a10": "a10g"}

# torch.cuda.get_device_name() -> table name, most specific first ("NVIDIA A100-SXM4-40GB", "Tesla T4", ...)
_CUDA_NAMES = (
    (r"B200", "b200"), (r"H200", "h200"), (r"H100.*PCIe", "h100-pcie"), (r"H100", "h100-sxm"),
    (r"A100.*40\s?GB", "a100-40gb"), (r"A100", "a100-80gb"), (r"L40S", "l40s"), (r"\bL4\b", "l4"),
    (r"A10G?\b", "a10g"), (r"A6000", "a6000"), (r"4090", "rtx4090"), (r"V100.*16\s?GB", "v100-16gb"),
    (r"V100", "v100-32gb"), (r"\bT4\b", "t4"), (r"MI300X", "mi300x"),
)


def device(name: str) -> Device:
    """The table's entry for `name` (case-insensitive, aliases like h100-80gb); an unknown name raises ConfigError."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DEVICES:
        known = [*DEVICES, *ALIASES]
        raise ConfigError(f"device '{name}' is not in the device table; {did_you_mean(name.lower(), known)}"
                          f"choose one of: {', '.join(DEVICES)}")
    return DEVICES[key]


def device_from_cuda_name(cuda_name: str) -> Device | None:
    """The table's entry for a `torch.cuda.get_device_name()` string, or None for a device not in the table."""
    for pattern, name in _CUDA_NAMES:
        if re.search(pattern, cuda_name, re.IGNORECASE):
            return DEVICES[name]
    return None


def precision_dtype(precision: str | int | None, tf32: bool = False) -> str:
    """The table dtype that does a run's matmuls under a Lightning precision flag ("bf16-mixed" -> bf16)."""
    text = str(precision or "32")
    if text.startswith("bf16"):
        return "bf16"
    if text.startswith("16"):
        return "fp16"
    return "tf32" if tf32 else "fp32"


@functools.lru_cache(maxsize=4)
def measured_cpu_tflops(size: int = 512, seconds: float = 0.2) -> float:
    """This CPU's fp32 matmul TFLOP/s, timed on a `size`x`size` matmul for about `seconds` (best of the repeats).

    CPUs have no datasheet figure torch reaches, so the CPU's "peak" is what torch's own matmul achieves here; the
    best repeat, since other processes sharing the cores only ever slow it.
    """
    import torch

    generator = torch.Generator().manual_seed(0)  # the global RNG is the run's: a first fit must not draw from it
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    torch.mm(a, b)  # warm-up: first-call allocation and thread-pool start
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12

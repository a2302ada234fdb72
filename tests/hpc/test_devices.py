"""The device table: names and aliases, CUDA device names, precision flags, and the measured CPU matmul peak."""

import pytest
import torch

from trainkit.errors import ConfigError
from trainkit.hpc.devices import device, device_from_cuda_name, measured_cpu_tflops, precision_dtype


def test_names_aliases_and_unknown_device() -> None:
    assert device("H100-80GB") is device("h100-sxm")
    assert device("a100-80gb").peak_tflops("bf16") == 312.0
    assert device("a100-40gb").memory_gib == 40.0
    with pytest.raises(ConfigError, match="did you mean a100-40gb"):
        device("a100-40")
    with pytest.raises(ConfigError, match="t4 has no bf16"):
        device("t4").peak_tflops("bf16")


@pytest.mark.parametrize(("cuda_name", "expected"), [
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA A100 80GB PCIe", "a100-80gb"),
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"), ("Tesla T4", "t4"), ("NVIDIA A10G", "a10g"), ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", "l40s"), ("Tesla V100-SXM2-16GB", "v100-16gb"), ("NVIDIA GeForce RTX 4090", "rtx4090"),
])
def test_cuda_device_names(cuda_name: str, expected: str) -> None:
    assert device_from_cuda_name(cuda_name).name == expected


def test_precision_flags_and_cpu_peak() -> None:
    assert [precision_dtype(p) for p in ("bf16-mixed", "16-mixed", "32-true", None)] == ["bf16", "fp16", "fp32", "fp32"]
    assert device_from_cuda_name("Some Future GPU") is None
    torch.manual_seed(0)
    assert 1e-4 < measured_cpu_tflops.__wrapped__(size=256, seconds=0.05) < 100  # a 2-core CPU does ~0.01-1 TFLOP/s
    # Measured at a process's first fit (Throughput): it must leave the run's random stream alone.
    after = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(4))

"""Memory arithmetic against hand values: optimizer states by kind, precision bytes, DDP's bucket copy, FSDP shards."""

import pytest
import torch
from torch import nn

from trainkit.hpc.memory_estimate import estimate_memory, largest_batch, states_per_parameter


def test_optimizer_states_by_kind() -> None:
    model = nn.Linear(10, 5)  # 55 parameters
    assert states_per_parameter(torch.optim.AdamW(model.parameters())) == 2
    assert states_per_parameter(torch.optim.Adam(model.parameters(), amsgrad=True)) == 3
    assert states_per_parameter(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)) == 1
    assert states_per_parameter(torch.optim.SGD(model.parameters(), lr=0.1)) == 0
    assert states_per_parameter(torch.optim.RMSprop(model.parameters(), momentum=0.9, centered=True)) == 3
    groups = [{"params": [model.weight], "momentum": 0.9}, {"params": [model.bias], "momentum": 0.0}]
    assert states_per_parameter(torch.optim.SGD(groups, lr=0.1)) == pytest.approx(50 / 55)


def test_precision_strategy_and_world_size() -> None:
    fp32 = estimate_memory(trainable=55, frozen=5, states=2, precision="32-true", activations=100)
    assert (fp32.weights, fp32.gradients, fp32.optimizer, fp32.total) == (240, 220, 440, 1000)
    assert estimate_memory(55, 5, 2, "bf16-mixed", 100) == fp32  # mixed precision keeps fp32 master weights
    half = estimate_memory(55, 5, 2, "bf16-true", 100)
    assert (half.weights, half.gradients, half.optimizer) == (120, 110, 220)
    ddp = estimate_memory(55, 5, 2, "32-true", 100, strategy="ddp", world_size=2)
    assert (ddp.weights, ddp.gradients, ddp.optimizer) == (240, 440, 440)  # the all-reduce bucket copy
    fsdp = estimate_memory(55, 5, 2, "32-true", 100, strategy="fsdp", world_size=4, copies=2)
    assert (fsdp.weights, fsdp.gradients, fsdp.optimizer, fsdp.activations, fsdp.copies) == (60, 55, 110, 100, 110)
    grad_op = estimate_memory(55, 5, 2, "32-true", 100, strategy="fsdp", world_size=4, sharding="SHARD_GRAD_OP")
    assert (grad_op.weights, grad_op.gradients) == (240, 55)
    hybrid = estimate_memory(55, 5, 2, "32-true", 100, strategy="fsdp", world_size=8, node_devices=2,
                             sharding="HYBRID_SHARD")
    assert hybrid.weights == 120


def test_largest_batch_leaves_the_margin() -> None:
    assert largest_batch(fixed=100, per_sample=10, device_bytes=1000, margin=0.1) == 80  # (900 - 100) / 10
    assert largest_batch(fixed=950, per_sample=10, device_bytes=1000, margin=0.1) == 0

"""A Linear layer's measured FLOPs and saved activations against 2*in*out per matmul and its input's bytes."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from trainkit.hpc.step_footprint import measure_step


def test_linear_flops_and_activations() -> None:
    layer = nn.Linear(64, 32, bias=False)

    def loss_at(batch: int) -> torch.Tensor:
        x = torch.randn(batch, 64, requires_grad=True)  # an inner layer: backward computes the input's gradient too
        return layer(x).sum()

    footprint = measure_step(loss_at, layer.parameters())
    assert footprint.flops_per_sample == 2 * 64 * 32 * 3  # forward, grad of input, grad of weight
    assert footprint.activations_per_sample == 64 * 4  # the input, saved for the weight's gradient; the weight is not
    assert footprint.activations_fixed == 0
    assert footprint.activations(10) == 10 * 64 * 4


def test_gradient_checkpointing_cuts_activations_and_adds_the_recompute() -> None:
    net = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU()) for _ in range(8)])

    def footprint(checkpointed: bool):  # noqa: ANN202
        def loss_at(batch: int) -> torch.Tensor:
            x = torch.randn(batch, 64)
            return (checkpoint_sequential(net, 4, x, use_reentrant=False) if checkpointed else net(x)).sum()

        return measure_step(loss_at, net.parameters())

    plain, checkpointed = footprint(False), footprint(True)
    assert plain.activations_per_sample == 9 * 64 * 4  # the input and the 8 ReLU outputs (Linear saves its input)
    assert checkpointed.activations_per_sample == 6 * 64 * 4  # 3 segments' inputs, the last segment's own 3
    matmul = 2 * 64 * 64
    assert plain.flops_per_sample == 8 * 3 * matmul - matmul  # the first layer's input needs no gradient
    assert checkpointed.flops_per_sample == plain.flops_per_sample + 6 * matmul  # 3 segments of 2 recomputed

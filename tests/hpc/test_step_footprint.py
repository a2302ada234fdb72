"""A Linear layer's measured FLOPs and saved activations against 2*in*out per matmul and its input's bytes."""

import torch
from torch import nn

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

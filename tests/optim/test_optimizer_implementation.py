"""`OptimizerConfig.implementation`: fused and foreach kernels take the same steps as the per-parameter loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.optim import OptimizerConfig


def _trained(name: str, implementation: str, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 2))
    optimizer = OptimizerConfig(name=name, lr=0.01, implementation=implementation).build(model)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return [p.detach() for p in model.parameters()]


@pytest.mark.parametrize(("name", "implementation"), [("adamw", "fused"), ("adamw", "foreach"), ("sgd", "fused")])
def test_fast_implementations_match_the_loop(name: str, implementation: str) -> None:
    optimizer = OptimizerConfig(name=name, implementation=implementation).build(nn.Linear(2, 2))
    assert optimizer.defaults["fused" if implementation == "fused" else "foreach"] is True
    loop, fast = _trained(name, "loop"), _trained(name, implementation)
    assert not torch.equal(loop[0], _trained(name, "loop", steps=0)[0])  # the steps moved the weights
    for a, b in zip(loop, fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_fused_for_an_optimizer_without_it_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="optimizer 'lion' has no 'fused' implementation"):
        OptimizerConfig(name="lion", implementation="fused").build(nn.Linear(2, 2))

"""What one forward/backward pass costs: the activation bytes autograd keeps for backward and the FLOPs counted
by torch's FLOP counter, measured at two small batches and scaled linearly to any batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class StepFootprint:
    """Activation bytes of a training step as `fixed + per_sample * batch`, and forward+backward FLOPs per sample."""

    activations_fixed: float
    activations_per_sample: float
    flops_per_sample: float

    def activations(self, batch: int) -> float:
        """Activation bytes at `batch` samples per device."""
        return max(0.0, self.activations_fixed + self.activations_per_sample * batch)


def saved_bytes(loss_of: Callable[[], Tensor], exclude: Iterable[Tensor] = ()) -> int:
    """Bytes of the distinct tensors autograd saves for backward while `loss_of()` runs its forward (the activations
    alive at the step's peak), leaving out the storages of `exclude` (the weights); runs the backward too."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in skip:
                seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_of()
    loss.backward()
    return sum(seen.values())


def counted_flops(loss_of: Callable[[], Tensor]) -> int:
    """FLOPs of `loss_of()`'s forward and the backward from its loss, by torch's FlopCounterMode (matmuls,
    convolutions and attention; element-wise ops are not counted)."""
    with FlopCounterMode(display=False) as counter:
        loss_of().backward()
    return counter.get_total_flops()


def measure_step(loss_at: Callable[[int], Tensor], weights: Iterable[Tensor], small: int = 2,
                 large: int = 4) -> StepFootprint:
    """Activation bytes and FLOPs of the training step `loss_at(batch)`, measured at batches `small` and `large`
    (a line through the two: buffers and per-step constants land in the fixed part)."""
    weights = list(weights)
    at_small = saved_bytes(lambda: loss_at(small), weights)
    at_large = saved_bytes(lambda: loss_at(large), weights)
    per_sample = (at_large - at_small) / (large - small)
    flops = counted_flops(lambda: loss_at(large))
    return StepFootprint(at_small - per_sample * small, per_sample, flops / large)

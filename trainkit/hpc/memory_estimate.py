"""Memory per device of a training run, split into weights, gradients, optimizer states and activations, under a
precision, a strategy (DDP replicates, FSDP shards) and a world size; and the largest batch that fits a device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

_ADAM_LIKE = ("Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adadelta", "Lamb", "LAMB", "AdamWScheduleFree")


def states_per_parameter(optimizer: torch.optim.Optimizer) -> float:
    """Optimizer state tensors per trainable parameter, by optimizer kind (AdamW 2: both moments; SGD 1 with
    momentum, else 0; RMSprop 1 plus momentum and centering; Adagrad and Lion 1); an unknown kind counts as 2."""
    kind = type(optimizer).__name__
    counts, numels = [], []
    for group in optimizer.param_groups:
        numel = sum(p.numel() for p in group["params"] if p.requires_grad)
        if kind in _ADAM_LIKE:
            states = 2 + bool(group.get("amsgrad"))
        elif kind == "SGD":
            states = int(group.get("momentum", 0) > 0)
        elif kind == "RMSprop":
            states = 1 + int(group.get("momentum", 0) > 0) + bool(group.get("centered"))
        elif kind in ("Adagrad", "Lion"):
            states = 1
        else:
            states = 2
        counts.append(states * numel)
        numels.append(numel)
    return sum(counts) / max(sum(numels), 1)


def step_temporaries(optimizer: torch.optim.Optimizer, cuda: bool) -> int:
    """Elements of the temporaries an optimizer step allocates: none fused; one copy of the group's parameters with
    foreach (torch's default on CUDA); in a loop (its default on CPU) two copies of the largest parameter for
    Adam-like kinds (the square root and its quotient), one for the rest. Measured in RSS on CPU: 3.2, 4.2 and 5.2
    copies of a 4096x4096 Linear's weights for fused, foreach and loop AdamW (gradient and 2 states included)."""
    adam_like = type(optimizer).__name__ in _ADAM_LIKE
    temporaries = 0
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.requires_grad]
        if group.get("fused") or not params:
            continue
        foreach = group.get("foreach")
        if foreach or (foreach is None and cuda):
            temporaries = max(temporaries, sum(p.numel() for p in params))
        else:
            temporaries = max(temporaries, (2 if adam_like else 1) * max(p.numel() for p in params))
    return temporaries


def bytes_per_weight(precision: str | int | None) -> int:
    """Bytes of one parameter (and its gradient and optimizer states): mixed precision keeps fp32 master weights,
    `-true` precisions hold everything in that dtype."""
    text = str(precision or "32")
    if text in ("bf16-true", "16-true", "bf16", "16", "half"):
        return 2
    return 8 if text.startswith("64") else 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device of each part of a training step's peak."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    copies: float = 0.0
    """Extra copies of the trainable weights that callbacks keep (an EMA, the update ratio's before/after)."""
    step_temporaries: float = 0.0
    """What the optimizer step allocates and frees again (see `step_temporaries`)."""

    @property
    def total(self) -> float:
        """Every part together: the peak counted as if all were alive at once (a safe upper bound)."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.copies + self.step_temporaries


def estimate_memory(trainable: int, frozen: int, states: float, precision: str | int | None, activations: float,
                    strategy: str = "ddp", world_size: int = 1, node_devices: int = 1,
                    sharding: str = "FULL_SHARD", copies: float = 0, temporaries: int = 0) -> MemoryEstimate:
    """Bytes per device for `trainable` and `frozen` parameters, `states` optimizer states per trainable parameter,
    `activations` bytes per device, `copies` extra copies of the trainable weights and `temporaries` elements the
    optimizer step allocates; FSDP (`strategy` "fsdp")
    shards per `sharding` over the world (a node's devices for HYBRID_SHARD); DDP over more than one device keeps a
    second copy of the gradients in its buckets."""
    size = bytes_per_weight(precision)
    weights, gradients, optimizer = (trainable + frozen) * size, trainable * size, trainable * states * size
    copies, temporary = copies * trainable * size, temporaries * size
    if strategy == "fsdp":
        shards = node_devices if sharding == "HYBRID_SHARD" else world_size
        if sharding in ("FULL_SHARD", "HYBRID_SHARD"):
            weights, copies = weights / shards, copies / shards
        if sharding != "NO_SHARD":
            gradients, optimizer, temporary = gradients / shards, optimizer / shards, temporary / shards
    elif world_size > 1:
        gradients *= 2  # torch DDP copies each gradient into its all-reduce bucket (gradient_as_bucket_view=False)
    return MemoryEstimate(weights, gradients, optimizer, activations, copies, temporary)


def largest_batch(fixed: float, per_sample: float, device_bytes: float, margin: float = 0.1) -> int:
    """The largest per-device batch whose memory (`fixed` bytes plus `per_sample` per sample) leaves `margin` of
    `device_bytes` free; 0 when not even the fixed part fits."""
    room = (1 - margin) * device_bytes - fixed
    if room < per_sample:
        return 0
    return int(room // per_sample) if per_sample > 0 else 10**9

"""Layer health: per-block gradient norm, activation mean/std, dead-ReLU and saturated fractions, on logging steps.

Forward hooks are attached at the start of a logging step's batch and removed at its end, so other steps run the
bare model; the statistics stay on the device until that step's one read-back.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn

from trainkit.callbacks.training_monitor import _log
from trainkit.errors import ConfigError

BLOCK_LISTS = ("blocks", "stages", "layers", "layer", "h")  # timm, Llama-style (`model.layers`), GPT-2 (`h`)
DEAD = (nn.ReLU, nn.ReLU6)  # units that output exactly 0 get no gradient: they can die
SATURATING = {nn.Sigmoid: (0.01, 0.99), nn.Tanh: (-0.99, 0.99), nn.Hardtanh: (-0.99, 0.99)}  # flat beyond these


class LayerHealth(Callback):
    """Logs `layers/<block>/grad_norm`, `act_mean`, `act_std`, `dead_frac` (blocks with ReLUs) and `sat_frac` (blocks
    with sigmoid/tanh) every N optimizer steps; `trainkit doctor` names dead, saturated, vanishing and exploding
    layers from them."""

    def __init__(self, every_n_steps: int = 0, depth: int | None = None) -> None:
        """Args:
        every_n_steps: log every N optimizer steps (0 is off; 10-50 costs one hooked forward per N steps).
        depth: module depth of the blocks below the network (1: its top-level children); None finds them: timm's
            stage groups, else the first `blocks`/`stages`/`layers`/`h` list, else the top-level children.
        """
        if every_n_steps < 0 or (depth is not None and depth < 1):
            raise ConfigError(f"layer_health: every_n_steps must be >= 0 and depth >= 1, not {every_n_steps} and "
                              f"{depth}; e.g. --layer_health.every_n_steps 20")
        self.every_n_steps = every_n_steps
        self.depth = depth
        self.blocks: list[tuple[str, nn.Module]] = []
        self._handles: list[Any] = []
        self._stats: dict[str, Tensor] = {}
        self._units: dict[str, int] = {}
        """Elements counted into each dead/saturated sum this step."""
        self._grads: dict[str, Tensor] | None = None

    @property
    def enabled(self) -> bool:
        """On when `every_n_steps` is set."""
        return self.every_n_steps > 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.blocks = find_blocks(pl_module, self.depth)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if (trainer.global_step + 1) % self.every_n_steps or self._handles:
            return
        for name, block in self.blocks:
            self._handles.append(block.register_forward_hook(self._output_hook(name)))
            for module in block.modules():
                if isinstance(module, DEAD):
                    self._handles.append(module.register_forward_hook(self._dead_hook(name)))
                elif type(module) in SATURATING:
                    self._handles.append(module.register_forward_hook(self._saturated_hook(name)))

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if not self._handles:
            return
        self._grads = {}
        for name, block in self.blocks:
            grads = [p.grad for p in block.parameters() if p.grad is not None]
            if grads:  # a frozen block has none: logging 0 would read as a vanished gradient
                self._grads[name] = torch.nn.utils.get_total_norm(grads)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._grads is None:
            return  # within gradient accumulation: the hooks stay until the optimizer step
        for handle in self._handles:
            handle.remove()
        self._handles = []
        metrics: dict[str, Tensor | float] = {f"layers/{name}/grad_norm": norm for name, norm in self._grads.items()}
        # The blocks' forward order, for the doctor and the figure: their names alone do not sort that way.
        metrics.update({f"layers/{name}/order": float(i) for i, (name, _) in enumerate(self.blocks)})
        for key, value in self._stats.items():
            block, stat = key.rsplit("/", 1)
            if key in self._units:
                value, stat = value / self._units[key], "dead_frac" if stat == "dead" else "sat_frac"
            metrics[f"layers/{block}/{stat}"] = value
        self._grads, self._stats, self._units = None, {}, {}
        # The optimizer step has advanced global_step: log at the step these gradients were computed for.
        _log(trainer, metrics, step=trainer.global_step - 1)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._stats, self._units, self._grads = [], {}, {}, None

    def _output_hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            x = _first_tensor(output)
            if x is not None and x.is_floating_point() and x.numel() > 1:
                x = x.detach().float()
                self._stats[f"{name}/act_mean"], self._stats[f"{name}/act_std"] = x.mean(), x.std()
        return hook

    def _dead_hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            units = _per_unit(output.detach() > 0)
            # A unit is dead when it is zero for every sample of the batch (and every position).
            self._add(f"{name}/dead", (~units).sum(), units.numel())
        return hook

    def _saturated_hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            lo, hi = SATURATING[type(module)]
            y = output.detach()
            self._add(f"{name}/saturated", ((y < lo) | (y > hi)).sum(), y.numel())
        return hook

    def _add(self, key: str, count: Tensor, total: int) -> None:
        self._stats[key] = self._stats[key] + count if key in self._stats else count.float()
        self._units[key] = self._units.get(key, 0) + total


def find_blocks(pl_module: LightningModule, depth: int | None = None) -> list[tuple[str, nn.Module]]:
    """The network's blocks in forward order, as (name, module): see `LayerHealth`'s `depth`."""
    split = pl_module.backbone_and_head() if callable(getattr(pl_module, "backbone_and_head", None)) else None
    root: nn.Module = split[0] if split else pl_module
    head = split[1] if split else None
    prefix = next(name for name, module in pl_module.named_modules() if module is root)
    prefix = f"{prefix}." if prefix else ""
    if depth is not None:
        found = [(name, m) for name, m in root.named_modules() if name and name.count(".") == depth - 1
                 and (isinstance(m, DEAD) or type(m) in SATURATING or any(True for _ in m.parameters()))]
    else:
        found = _timm_groups(root) or _block_list(root) or [
            (name, m) for name, m in root.named_children() if any(True for _ in m.parameters())]
    blocks = [(prefix + name, m) for name, m in found if m is not head]
    if not blocks:
        raise ConfigError(f"layer_health found no blocks with parameters at depth {depth}; try a smaller "
                          "--layer_health.depth, or leave it unset to find the blocks")
    return blocks


def _timm_groups(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """timm's coarse stage groups (layer1..4, blocks.N, stages.N), each named by its modules' common prefix; a stem
    of loose layers (conv1, bn1) has none and is left out."""
    if not callable(getattr(root, "group_matcher", None)):
        return []
    from timm.models import group_modules

    modules = dict(root.named_modules())
    blocks = []
    for names in group_modules(root, root.group_matcher(coarse=True)).values():
        parts = [name.split(".") for name in names]
        common = []
        for column in zip(*parts, strict=False):
            if len(set(column)) > 1:
                break
            common.append(column[0])
        name = ".".join(common)
        while "." in name and len(list(modules[name.rsplit(".", 1)[0]].children())) == 1:
            name = name.rsplit(".", 1)[0]  # `layer1`, not its only child `layer1.0`
        if name in modules and name:
            blocks.append((name, modules[name]))
    return blocks


def _block_list(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """The children of the first (shallowest) module list named like a stack of blocks."""
    for name, module in root.named_modules():
        if isinstance(module, nn.ModuleList | nn.Sequential) and name.rsplit(".", 1)[-1] in BLOCK_LISTS \
                and len(module) >= 2:
            return [(f"{name}.{child}", block) for child, block in module.named_children()]
    return []


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output if isinstance(output, list | tuple) else ()
    return next((v for v in values if isinstance(v, Tensor)), None)


def _per_unit(active: Tensor) -> Tensor:
    """Whether each unit (channel of (B, C, H, W), feature of (B, D) or (B, T, D)) was active for any sample."""
    if active.dim() <= 1:
        return active
    unit = 1 if active.dim() == 4 else -1
    return active.movedim(unit, 0).flatten(1).any(dim=1)


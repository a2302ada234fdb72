"""Speed options from YAML or flags (`--speed.compile true --speed.channels_last true`), applied before training."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from trainkit.errors import ConfigError

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class Speed(Callback):
    """torch.compile, channels_last memory format, gradient checkpointing and matmul precision, all off by default."""

    def __init__(
        self,
        compile: bool = False,
        compile_mode: CompileMode = "default",
        channels_last: bool = False,
        grad_checkpointing: bool = False,
        matmul_precision: Literal["highest", "high", "medium"] | None = None,
    ) -> None:
        """Choose the speed options; every one is off by default.

        Args:
            compile: compile the task's forward with torch.compile (the first steps are slow while it compiles).
            compile_mode: torch.compile mode; reduce-overhead uses CUDA graphs, max-autotune searches kernels longer.
            channels_last: keep image tensors (weights and 4-D inputs) in NHWC order; faster convolutions with
                tensor cores under mixed precision.
            grad_checkpointing: recompute activations in the backward pass of timm backbones and Hugging Face
                language models (less memory, about 20-30% more compute), so larger batches or images fit.
            matmul_precision: torch.set_float32_matmul_precision; high lets fp32 matmuls use TF32 on Ampere+ GPUs.
        """
        self.compile = compile
        self.compile_mode = compile_mode
        self.channels_last = channels_last
        self.grad_checkpointing = grad_checkpointing
        self.matmul_precision = matmul_precision
        self._applied_to: set[int] = set()

    @property
    def enabled(self) -> bool:
        """Whether any option is on; a disabled callback is not handed to the Trainer."""
        return bool(self.compile or self.channels_last or self.grad_checkpointing or self.matmul_precision)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if id(pl_module) in self._applied_to:  # fit then test reuse the module; apply once
            return
        self._applied_to.add(id(pl_module))
        if self.matmul_precision is not None:
            torch.set_float32_matmul_precision(self.matmul_precision)
        if self.grad_checkpointing:
            enable_grad_checkpointing(pl_module)
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
            pl_module.register_forward_pre_hook(_inputs_to_channels_last)
        if self.compile:
            pl_module.compile(mode=None if self.compile_mode == "default" else self.compile_mode)


def enable_grad_checkpointing(module: nn.Module) -> list[nn.Module]:
    """Turn on gradient checkpointing in every timm model (`set_grad_checkpointing`) and Hugging Face model
    (`gradient_checkpointing_enable`) inside `module`; returns those models."""
    timm_models = [m for m in module.modules() if hasattr(m, "set_grad_checkpointing")]
    hf_models = [m for m in module.modules() if getattr(m, "supports_gradient_checkpointing", False)
                 and hasattr(m, "gradient_checkpointing_enable")]
    if not timm_models and not hf_models:
        raise ConfigError(
            f"speed.grad_checkpointing needs a timm backbone or a Hugging Face model, and "
            f"{type(module).__name__} has none; set --speed.grad_checkpointing false or use a timm backbone"
        )
    for model in timm_models:
        model.set_grad_checkpointing(True)
    for model in hf_models:  # non-reentrant: works with frozen inputs (LoRA) and is torch's recommended form
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return timm_models + hf_models


def _inputs_to_channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4 else a
        for a in args
    )

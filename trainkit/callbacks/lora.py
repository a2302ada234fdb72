"""LoRA fine-tuning for any task from flags or YAML (`--lora.r 8 --lora.target_modules [qkv,proj]`).

A callback rather than a task argument: it needs no change to any task, wraps whatever `optimized_module()`
returns (the student of a distillation, the whole network otherwise) before the optimizer is built, and records
its settings in each checkpoint, so `trainkit test/predict --ckpt_path` rebuilds the adapters a checkpoint needs
(and none for a merged one) whatever the flags.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from trainkit.models.lora import CHECKPOINT_KEY, LoraSettings, apply_lora, parameter_counts


class LoRA(Callback):
    """Inject peft LoRA adapters into the task's trained module; only adapters (and `train_modules`) train."""

    def __init__(
        self,
        r: int | None = None,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        target_modules: list[str] | str | None = None,
        train_modules: list[str] | None = None,
    ) -> None:
        """Args:
        r: adapter rank; None leaves LoRA off.
        lora_alpha: adapter scale numerator (the update is scaled by lora_alpha / r).
        lora_dropout: dropout on the adapter input.
        target_modules: layers to adapt: a list of module names or name suffixes (e.g. [qkv, proj, fc1, fc2]),
            or one regular expression matched against the full names.
        train_modules: modules that train fully beside the adapters, e.g. [fc] or [head] for the new head.
        """
        self.settings = (
            LoraSettings(r, lora_alpha, lora_dropout, target_modules or [], list(train_modules or []))
            if r is not None
            else None
        )
        self.handle: Any = None

    @property
    def state_key(self) -> str:
        return CHECKPOINT_KEY

    @property
    def enabled(self) -> bool:
        """Whether adapters are asked for (`--lora.r`); a disabled callback is not handed to the Trainer.

        Evaluating a LoRA checkpoint needs no flags: the task rebuilds the adapters it saved (`restore_lora`).
        """
        return self.settings is not None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Adapters must exist before the optimizer is built; a resumed LoRA run passes the same flags.
        if stage == "fit" and self.handle is None:
            self._apply(pl_module, self.settings)

    def _apply(self, pl_module: LightningModule, settings: LoraSettings) -> None:
        self.settings = settings
        target = pl_module.optimized_module() if hasattr(pl_module, "optimized_module") else pl_module
        self.handle = apply_lora(target, settings)
        trainable, total = parameter_counts(target)
        share = f"{trainable / total:.2%}"
        rank_zero_info(f"LoRA r={settings.r}: {trainable:,} trainable of {total:,} parameters ({share})")

    def state_dict(self) -> dict[str, Any]:
        return self.settings.as_dict() if self.handle is not None and self.settings is not None else {}


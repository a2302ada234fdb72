"""Rebuild a trained task from a trainkit checkpoint alone, with the task class recorded in it."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from trainkit.checkpoints import load_checkpoint
from trainkit.errors import ConfigError
from trainkit.models.lora import apply_lora, saved_lora_settings
from trainkit.tasks.base import TaskModule


def load_task(path: str | Path) -> TaskModule:
    """Load the TaskModule saved in checkpoint `path` (the class named by its `_class_path` hyperparameter),
    with the LoRA adapters its weights were trained with, if any."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist; train it first (e.g. `trainkit fit --config ...`)")
    checkpoint = load_checkpoint(path)
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if not class_path:
        raise ConfigError(f"checkpoint '{path}' does not record its task class; use one written by `trainkit fit`")
    module_name, _, class_name = class_path.rpartition(".")
    task_class = getattr(importlib.import_module(module_name), class_name)
    lora = saved_lora_settings(checkpoint)
    if lora is None:
        return task_class.load_from_checkpoint(path, map_location="cpu")
    with warnings.catch_warnings():  # the adapter weights cannot fit until the adapters exist: loaded below
        warnings.simplefilter("ignore")
        task = task_class.load_from_checkpoint(path, map_location="cpu", strict=False)
    apply_lora(task.optimized_module(), lora)
    task.load_state_dict(checkpoint["state_dict"])
    return task

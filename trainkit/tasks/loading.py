"""Rebuild a trained task from a trainkit checkpoint alone, with the task class recorded in it."""

from __future__ import annotations

import importlib
from pathlib import Path

from trainkit.checkpoints import load_checkpoint
from trainkit.errors import ConfigError
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
    # The task's on_load_checkpoint rebuilds the LoRA adapters the weights need, if any.
    return task_class.load_from_checkpoint(path, map_location="cpu")

"""Rebuild a trained task from a trainkit checkpoint alone, with the task class recorded in it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

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
    task_class = saved_class(checkpoint, path)
    # The task's on_load_checkpoint rebuilds the LoRA adapters the weights need, if any.
    return task_class.load_from_checkpoint(path, map_location="cpu")


def saved_class(checkpoint: dict[str, Any], path: str | Path, key: str = "hyper_parameters") -> type:
    """The class an already-loaded checkpoint records under `key` (its `_class_path`, written by `trainkit fit`): the
    task's by default, the DataModule's with `datamodule_hyper_parameters`."""
    class_path = (checkpoint.get(key) or {}).get("_class_path")
    if not class_path:
        what = "DataModule" if key.startswith("datamodule") else "task"
        raise ConfigError(f"checkpoint '{path}' does not record its {what} class; use one written by `trainkit fit`")
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)

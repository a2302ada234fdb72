"""The one way trainkit reads a checkpoint: weights only, so a checkpoint from anywhere can never run code; and the
trained task (or DataModule class) a checkpoint records, rebuilt from the file alone.

A `.ckpt` is a pickle; a full unpickle (`weights_only=False`) calls whatever `__reduce__` the file names, e.g.
`os.system`. torch's weights-only unpickler accepts tensors, containers and the classes registered with
`torch.serialization.add_safe_globals` (trainkit registers its OptimizerConfig/SchedulerConfig), nothing else.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainkit.errors import ConfigError

if TYPE_CHECKING:
    from trainkit.tasks.base import TaskModule


def _register_safe_globals() -> None:
    import trainkit.optim  # noqa: F401  (registers the config classes that tasks keep in their hyperparameters)


def unsafe_globals(path: str | Path) -> list[str]:
    """Names of the callables/classes a checkpoint file would import when unpickled that weights-only loading refuses.

    Read from the pickle's opcodes, without unpickling anything; a sharded (folder) checkpoint holds no pickle here.
    """
    path = Path(path)
    if path.is_dir():
        return []
    _register_safe_globals()
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001  a file torch cannot scan is reported by the load itself
        return []


def refusal(path: str | Path) -> str | None:
    """Why trainkit refuses to load `path` (it would run code), or None when it holds only weights and plain data."""
    names = unsafe_globals(path)
    if not names:
        return None
    shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
    return (f"it holds objects that would run code when loaded ({shown}); trainkit loads checkpoints weights-only: "
            "use a checkpoint written by `trainkit fit`, or re-save a trusted one's state_dict with torch.save")


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint file on the CPU, weights only; a file that would run code raises ConfigError in one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist; pass an existing .ckpt file")
    if problem := refusal(path):
        raise ConfigError(f"checkpoint '{path}' is refused: {problem}")
    _register_safe_globals()
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"checkpoint '{path}' is refused: weights-only loading failed ({first}); use a checkpoint "
                          "written by `trainkit fit`") from error
    except (RuntimeError, EOFError) as error:
        raise ConfigError(f"checkpoint '{path}' cannot be loaded ({error}); pass an intact checkpoint") from error


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

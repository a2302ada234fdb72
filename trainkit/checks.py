"""Checks of a parsed run config that Lightning or torch would accept silently or answer with a misleading message.

Each check raises ConfigError naming the flag and the fix, before any model or data is built.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError


def check_config_files(argv: list[str]) -> None:
    """A `--config` file with a YAML syntax error is named with its line, which jsonargparse leaves out."""
    import yaml

    paths = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    paths += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for path in paths:
        if not Path(path).is_file():
            continue  # jsonargparse names a missing file itself
        try:
            yaml.safe_load(Path(path).read_text())
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            tag = re.search(r"tag:yaml.org,2002:(python/\S+?)'", str(error.problem))
            if tag and mark:
                raise ConfigError(f"{path} line {mark.line + 1}: the YAML tag '!!{tag.group(1)}' builds a Python "
                                  "object, and such tags are refused (a config could run code); write the plain "
                                  "value, or a class_path/init_args pair") from error
            since = error.context_mark
            context = f" ({error.context} from line {since.line + 1})" if error.context and since else ""
            raise ConfigError(f"{path}: YAML syntax error at {where}: {error.problem or 'invalid YAML'}{context}; "
                              "fix the brackets, quotes or indentation there") from error


def check_run_config(config: Any, subcommand: str | None) -> None:
    """Refuse settings that would train nothing, validate never, or keep the worst checkpoint."""
    trainer = config.get("trainer") or {}
    monitor, mode = str(config.get("monitor") or ""), config.get("mode")
    if "loss" in monitor.rsplit("/", 1)[-1] and mode == "max":
        raise ConfigError(f"--monitor {monitor} with --mode max keeps the checkpoint with the highest loss (the "
                          "worst); use --mode min, or monitor a higher-is-better metric (val/acc) with --mode max")
    batch_size = _init_arg(config.get("data"), "batch_size")
    if isinstance(batch_size, int) and batch_size < 1:
        raise ConfigError(f"--data.init_args.batch_size {batch_size} must be 1 or more; e.g. 64")
    if subcommand != "fit":
        return
    for key in ("max_epochs", "max_steps"):
        if trainer.get(key) == 0:
            raise ConfigError(f"--trainer.{key} 0 trains nothing (and would test an untrained model); "
                              f"set --trainer.{key} 1 or more")
    limit = trainer.get("limit_train_batches")
    if limit is not None and not isinstance(limit, bool) and float(limit) == 0:
        raise ConfigError("--trainer.limit_train_batches 0 trains on no batches; set a number of batches (e.g. 10), "
                          "a fraction (e.g. 0.25), or leave it out for all")
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    if isinstance(every, int) and isinstance(epochs, int) and epochs > 0 and every > epochs \
            and trainer.get("limit_val_batches") != 0:
        raise ConfigError(f"--trainer.check_val_every_n_epoch {every} never validates in a {epochs}-epoch run, so no "
                          f"best checkpoint is chosen; set it to {epochs} or less, or --trainer.max_epochs {every}")
    _warn_cpu_devices(trainer)


def check_checkpoint_matches(config: Any, ckpt_path: str | None, argv: list[str]) -> None:
    """The checkpoint's task and hyperparameters win over the config (Lightning reapplies them): an explicit flag or
    another task class that disagrees is refused instead of silently overridden."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return
    from trainkit.checkpoints import load_checkpoint

    hparams = dict(load_checkpoint(ckpt_path, mmap=True).get("hyper_parameters") or {})
    model = config.get("model") or {}
    saved_class, class_path = hparams.pop("_class_path", None), model.get("class_path")
    if saved_class and class_path and saved_class.rsplit(".", 1)[-1] != str(class_path).rsplit(".", 1)[-1]:
        raise ConfigError(f"checkpoint '{ckpt_path}' holds a {saved_class.rsplit('.', 1)[-1]} but the config builds "
                          f"a {str(class_path).rsplit('.', 1)[-1]}; evaluate it with the config it was trained with "
                          "(config.yaml in its run folder)")
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--model.")}
    for key, saved in hparams.items():
        if {f"--model.{key}", f"--model.init_args.{key}"} & given and _plain(saved):
            value = _init_arg(model, key)
            if _plain(value) and value != saved:
                raise ConfigError(f"--model.init_args.{key} {value} differs from the checkpoint's {key}={saved}, "
                                  "which its weights were trained with and which would be used; drop the flag, "
                                  "or pass a checkpoint trained with it")


def _init_arg(group: Any, key: str) -> Any:
    if not group:
        return None
    init_args = group.get("init_args") if hasattr(group, "get") else None
    return (init_args or {}).get(key) if init_args is not None else group.get(key)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _warn_cpu_devices(trainer: Any) -> None:
    devices, accelerator = trainer.get("devices"), str(trainer.get("accelerator") or "auto")
    count = int(devices) if isinstance(devices, int) or str(devices).isdigit() else 0
    cores = os.cpu_count() or 1
    if count <= cores or int(os.environ.get("LOCAL_RANK", 0)) > 0:
        return
    import torch

    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        print(f"trainkit: warning: --trainer.devices {count} starts {count} CPU processes on a machine with {cores} "
              "cores, each slower than one process alone; use --trainer.devices 1 on CPU", file=sys.stderr, flush=True)

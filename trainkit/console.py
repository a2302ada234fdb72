"""The `trainkit` console entry: dispatch to fit/validate/test/predict or to a command module; one-line errors.

Extra commands (`trainkit lr-find`, `trainkit doctor`, ...) are the modules of `trainkit.commands`, each with a
`main(argv)`; adding one is adding a file.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import re
import sys
from pathlib import Path

from trainkit.errors import ConfigError, did_you_mean

DEBUG_ENV = "TRAINKIT_DEBUG"
LIBRARIES = ("torch", "torchvision", "torchmetrics", "timm", "lightning", "transformers", "peft", "torchaudio")
"""Modules whose classes "did you mean" leaves out: a typo is of a trainkit class or the user's own."""


def extra_commands() -> dict[str, str]:
    """Command name (`lr-find`) -> module (`trainkit.commands.lr_find`) for every module in trainkit.commands."""
    import trainkit.commands

    return {
        info.name.replace("_", "-"): f"trainkit.commands.{info.name}"
        for info in pkgutil.iter_modules(trainkit.commands.__path__)
        if not info.name.startswith("_")
    }


LIGHTNING_COMMANDS = {
    "fit": "train from a YAML experiment: trainkit fit --config X.yaml",
    "validate": "validate a checkpoint: --ckpt_path best|last|PATH",
    "test": "test a checkpoint: --ckpt_path best|last|PATH",
    "predict": "a checkpoint's predictions on the data's predict split",
}
"""The LightningCLI subcommands and their one line in `trainkit --help`."""


def top_help() -> str:
    """`trainkit --help`: every command with one line, without building the CLI (which takes seconds)."""
    import ast

    import trainkit.commands

    lines = ["usage: trainkit COMMAND [options]    (trainkit COMMAND --help: its options)", "",
             "trainkit: train deep networks from YAML experiments.", "", "commands:"]
    rows = dict(LIGHTNING_COMMANDS)
    for info in sorted(pkgutil.iter_modules(trainkit.commands.__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            source = Path(trainkit.commands.__path__[0], f"{info.name}.py").read_text()
            rows[info.name.replace("_", "-")] = _one_line_summary(ast.get_docstring(ast.parse(source)) or "")
    lines += [f"  {name:<11} {summary}" for name, summary in rows.items()]
    return "\n".join(lines)


def _one_line_summary(docstring: str, width: int = 65) -> str:
    """A command module's docstring, less its "`usage`:" opening, cut to one line of `width` characters."""
    text = " ".join(re.sub(r"^`[^`]*`:\s*", "", docstring.strip()).split())
    text = re.split(r"(?<=[^.])\. |; ", text)[0].rstrip(".")
    return text if len(text) <= width else text[:width - 3].rsplit(" ", 1)[0].rstrip(",;") + " ..."


def _description() -> str:
    from trainkit.cli import DESCRIPTION

    extra = ", ".join(sorted(extra_commands()))
    return f"{DESCRIPTION[:-1]}; also {extra} (trainkit COMMAND --help)." if extra else DESCRIPTION


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes, outermost first."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def one_line(error: BaseException) -> str:
    """Squeeze an error into one readable line; jsonargparse nests the real reason several causes deep."""
    chain = _chain(error)
    config_error = next((e for e in chain if isinstance(e, ConfigError)), None)
    if config_error is not None:
        text = str(config_error).strip()
        if "Original Traceback" in text:  # re-raised from a DataLoader worker: its own message is the last line
            text = text.splitlines()[-1].removeprefix(f"{ConfigError.__module__}.ConfigError: ")
        return text
    keys: list[str] = []
    for cause in chain:
        for key in re.findall(r'Parser key "([^"]+)"', str(cause)):
            if key not in keys and not any(k.endswith(f".{key}") for k in keys):
                keys.append(key)
    where = ".".join(keys)
    if unimportable := _unimportable_class_path(chain):
        return f"{where + ': ' if where else ''}{unimportable}"
    text = str(chain[-1]).strip() or type(chain[-1]).__name__
    lines = [line.strip(" -:") for line in text.splitlines() if line.strip(" -:")]
    reason = lines[0] if lines else type(chain[-1]).__name__
    if re.search(r"is not (accepted|expected)|unrecognized arguments", reason):
        reason += f"; {_option_suggestion(chain, reason)}check its spelling (`trainkit fit --help` lists the options)"
    elif match := re.search(r"Expected a dot import path string: (\S+)", reason):
        reason += f"; {_class_suggestion(match.group(1))}give a class name trainkit knows or a full class_path"
    return re.sub(r"\s+", " ", f"{where}: {reason}" if where else reason)


def _option_suggestion(chain: list[BaseException], reason: str) -> str:
    """`did you mean lr? ` for `Option 'lrr' is not accepted`, from the init arguments of the class being parsed."""
    option = re.search(r"(?:Option|Key) '([\w.]+)' is not (?:accepted|expected)", reason)
    paths = [m.group(1) for cause in chain for m in re.finditer(r"given class_path '([\w.]+)'", str(cause))]
    if option is None or not paths:
        return ""
    module, _, name = paths[-1].rpartition(".")  # the innermost class: the one the option was given to
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return ""
    return did_you_mean(option.group(1).rsplit(".", 1)[-1], _init_arguments(cls))


def _init_arguments(cls: type) -> list[str]:
    """The keyword arguments `cls` accepts, through the `**kwargs` its __init__ passes to its bases."""
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        try:
            params = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            break
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _class_suggestion(name: str) -> str:
    """`did you mean TinyCNN? ` among the tasks, DataModules and networks of trainkit and the user's own modules
    (the libraries' hundreds of nn.Modules would drown the one meant)."""
    import torch
    from lightning.pytorch import LightningDataModule

    seen: set[type] = set()
    todo: list[type] = [torch.nn.Module, LightningDataModule]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo += cls.__subclasses__()
    ours = {cls.__name__ for cls in seen if not cls.__name__.startswith("_")
            and not cls.__module__.startswith(LIBRARIES)}
    return did_you_mean(name, ours, n=1)


def _unimportable_class_path(chain: list[BaseException]) -> str | None:
    """jsonargparse reports a class_path it cannot import as a type mismatch; name the import failure instead."""
    for cause in chain:
        match = re.search(r"Problem with given class_path '([\w.]+)'", str(cause))
        if match is None:
            continue
        module, _, name = match.group(1).rpartition(".")
        try:
            found = getattr(importlib.import_module(module), name, None) if module else None
        except Exception as error:  # noqa: BLE001  the import's own message is the point
            return (f"class_path '{match.group(1)}' cannot be imported ({type(error).__name__}: {error}); put its "
                    "module on PYTHONPATH or install it, and check the spelling")
        if found is None:
            return f"class_path '{match.group(1)}' names nothing in module '{module}'; check the class name"
    return None


def _disk_full(error: BaseException, argv: list[str]) -> str | None:
    """A full disk or quota anywhere under the run (logs, reports, config), named with its folder and the way out;
    checkpoints are staged and renamed (hpc/atomic.py), so the ones already written stay whole."""
    full = next((e for e in _chain(error) if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)), None)
    if full is None:
        return None
    from trainkit.saved_config import flag_value

    where = full.filename or flag_value(argv, "--runs_dir") or "runs"
    return (f"no space left on the device of {Path(where).resolve()} ({os.strerror(full.errno)}); free space there "
            "or pass --runs_dir on another disk; the checkpoints written so far are whole and a rerun with "
            "--ckpt_path last resumes")


def _is_usage_error(error: BaseException) -> bool:
    return any(isinstance(e, ConfigError) or type(e).__name__ == "ArgumentError" for e in _chain(error))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `trainkit` console script."""
    from trainkit.known_warnings import silence_known_warnings

    silence_known_warnings()  # before any command imports Lightning
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"]):
        print(top_help())
        return
    try:
        commands = extra_commands() if argv and not argv[0].startswith("-") else {}
        if argv and argv[0] in commands:
            importlib.import_module(commands[argv[0]]).main(argv[1:])
        else:
            from trainkit.cli import TrainkitCLI
            from trainkit.saved_config import with_saved_config

            argv = with_saved_config(argv)
            if from_shell:
                sys.argv[1:] = argv  # LightningCLI reads sys.argv itself (and warns when given both)
            TrainkitCLI(args=None if from_shell else argv, description=_description())
    except KeyboardInterrupt:
        print("trainkit: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001  every failure a user can cause ends as one line, not a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        is_usage = _is_usage_error(error)
        prefix = "" if is_usage else f"{type(error).__name__}: "
        line = _disk_full(error, argv) or f"{prefix}{one_line(error)}"
        print(f"trainkit: error: {line} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        sys.exit(2 if is_usage else 1)


if __name__ == "__main__":
    main()

"""The `trainkit` console entry: dispatch to fit/validate/test/predict or to a command module; one-line errors.

Extra commands (`trainkit lr-find`, `trainkit doctor`, ...) are the modules of `trainkit.commands`, each with a
`main(argv)`; adding one is adding a file.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys

from trainkit.errors import ConfigError

DEBUG_ENV = "TRAINKIT_DEBUG"


def extra_commands() -> dict[str, str]:
    """Command name (`lr-find`) -> module (`trainkit.commands.lr_find`) for every module in trainkit.commands."""
    import trainkit.commands

    return {
        info.name.replace("_", "-"): f"trainkit.commands.{info.name}"
        for info in pkgutil.iter_modules(trainkit.commands.__path__)
        if not info.name.startswith("_")
    }


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
        reason += "; check its spelling (`trainkit fit --help` lists the options)"
    return re.sub(r"\s+", " ", f"{where}: {reason}" if where else reason)


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


def _is_usage_error(error: BaseException) -> bool:
    return any(isinstance(e, ConfigError) or type(e).__name__ == "ArgumentError" for e in _chain(error))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `trainkit` console script."""
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
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
        print(f"trainkit: error: {prefix}{one_line(error)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        sys.exit(2 if is_usage else 1)


if __name__ == "__main__":
    main()

"""Advice that can be followed: each suggested flag is kept only where the run's own config accepts it.

The run's saved config.yaml is what its parser produced for its own model, DataModule and callbacks, every argument
included, so a flag whose key is not in it would be refused by `trainkit fit` for this run (a table's DataModule has
no `train_transform`, a regression MLP no `drop_rate`). Where no flag fits, the advice is given in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Try:
    """One change to suggest: the first of `flags` the run accepts, else `words`."""

    words: str
    flags: tuple[str, ...] = ()


def for_run(suggestions: list[str | Try], config: dict[str, Any] | None) -> list[str]:
    """The suggestions as flags the run accepts, or in words where none fits; a plain flag it refuses is left out.

    Without a saved config nothing can be checked: flags with words are given in words, plain flags as they are.
    """
    kept = []
    for suggestion in suggestions:
        if isinstance(suggestion, Try):
            fitting = [flag for flag in suggestion.flags if config and accepts(config, flag)]
            kept.append(fitting[0] if fitting else suggestion.words)
        elif not suggestion.startswith("--") or not config or accepts(config, suggestion):
            kept.append(suggestion)
    return kept


def accepts(config: dict[str, Any], flag: str) -> bool:
    """Whether `--a.b.c value` names a key of `config` (the run's resolved config)."""
    node: Any = config
    for key in flag.split()[0].removeprefix("--").split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True

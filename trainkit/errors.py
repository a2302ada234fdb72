"""The one exception type for mistakes a user can make: its message names the bad value and the fix."""

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """A bad value in a config, a flag or on disk; printed by the CLI as one line."""


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The (at most `n`) names in `known` closest to `name`, closest first: the hint in a one-line error."""
    return difflib.get_close_matches(name, list(known), n=n)


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """`did you mean a or b? ` for the names in `known` closest to `name`, or "" when none is close."""
    close = close_names(name, known, n)
    return f"did you mean {' or '.join(close)}? " if close else ""

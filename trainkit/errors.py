"""The one exception type for mistakes a user can make: its message names the bad value and the fix."""

from typing import ClassVar


class ConfigError(Exception):
    """A bad value in a config, a flag or on disk; printed by the CLI as one line."""

    raised: ClassVar[list[str]] = []
    """Messages raised so far: jsonargparse folds an error from a class's __init__ into its own multi-line text, and
    the CLI looks for these to print the user's mistake instead of jsonargparse's union-type summary."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        ConfigError.raised.append(message)

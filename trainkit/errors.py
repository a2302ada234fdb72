"""The one exception type for mistakes a user can make: its message names the bad value and the fix."""


class ConfigError(Exception):
    """A bad value in a config, a flag or on disk; printed by the CLI as one line."""

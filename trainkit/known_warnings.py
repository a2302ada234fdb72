"""The third-party warnings a trainkit user can do nothing about, silenced in this one place, each with its reason.

A warning a user can act on (too few data workers, a logging interval longer than the epoch) is never listed here.
"""

from __future__ import annotations

import warnings

KNOWN_WARNINGS: list[tuple[str, type[Warning], str]] = [
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning,
     "Lightning's own pytree helper uses torch's deprecated LeafSpec at every fit; a Lightning release fixes it, no "
     "config or flag can"),
    (r"LightningCLI's args parameter is intended to run from within Python", UserWarning,
     "trainkit hands LightningCLI the command line itself on purpose (saved configs, tune trials), and the warning "
     "prints that internal argv"),
]
"""(message regex, category, why it is silenced)."""


def silence_known_warnings() -> None:
    """Ignore the warnings in KNOWN_WARNINGS (idempotent: warnings.filterwarnings drops duplicates)."""
    for message, category, _why in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)

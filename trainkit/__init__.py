"""trainkit: a Lightning-based experiment CLI for training deep networks."""

__version__ = "0.1.0"

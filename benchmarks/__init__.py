"""trainkit's benchmark suite: `python -m benchmarks` (full, minutes) or `python -m benchmarks --smoke` (seconds)."""

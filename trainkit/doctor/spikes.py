"""The loss spikes a run's spike guard caught, read back from `spikes.jsonl` in its folder for the doctor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPIKES_FILE = "spikes.jsonl"
"""One JSON object per caught spike: step, epoch, batch_idx, loss, median, limit, action, sample_ids."""


def read_spikes(run_dir: str | Path) -> list[dict[str, Any]]:
    """The spikes recorded in a run folder, oldest first ([] when none were caught or the file is unreadable)."""
    path = Path(run_dir) / SPIKES_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a killed run
        if isinstance(record, dict):
            records.append(record)
    return records


def spikes_line(records: list[dict[str, Any]]) -> str:
    """One line naming the caught spikes' steps and batches (or sample ids), and what the guard did."""
    shown = []
    for record in records[:5]:
        ids = record.get("sample_ids")
        where = f"samples {ids[:8]}" if ids else f"epoch {record.get('epoch')} batch {record.get('batch_idx')}"
        shown.append(f"step {record.get('step')} (loss {record.get('loss', float('nan')):.4g} over a median of "
                     f"{record.get('median', float('nan')):.4g}, {where})")
    more = f" and {len(records) - 5} more" if len(records) > 5 else ""
    actions = sorted({str(r.get("action")) for r in records})
    return (f"loss spikes caught: {len(records)} ({', '.join(actions)}): {'; '.join(shown)}{more}; look at those "
            f"batches for outliers or bad labels ({SPIKES_FILE})")

"""Checkpoint files that are either whole or absent: atomic replacement, and a cheap check for broken ones."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def replace_atomically(tmp: str | Path, final: str | Path) -> None:
    """Move a finished checkpoint over `final` so that readers see the old file or the new one, never half of one.

    Lightning writes checkpoints in place, so a kill during a save would leave a truncated `last.ckpt`; `os.replace`
    is atomic on POSIX. A sharded checkpoint is a folder, which cannot replace a non-empty folder in one step: the
    old one is moved aside first and deleted after.
    """
    tmp, final = Path(tmp), Path(final)
    if tmp.is_dir() and final.is_dir():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the checkpoint at `path` cannot be loaded (truncated, corrupt, empty), or None when it is intact.

    torch.save writes a zip archive with a CRC per record, so reading it through zipfile finds truncation and flipped
    bytes without unpickling anything. A sharded (folder) checkpoint is checked for its metadata file.
    """
    path = Path(path)
    if path.is_dir():
        return None if (path / ".metadata").is_file() else "sharded checkpoint folder without its .metadata file"
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return f"record {bad} fails its checksum" if bad else None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"not a complete checkpoint ({error})"

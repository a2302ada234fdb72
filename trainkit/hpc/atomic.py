"""Checkpoint files that are either whole or absent: atomic replacement, and a cheap check for broken ones."""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

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


def staged_saves(folder: Path, name: str) -> list[Path]:
    """The staging files of checkpoint `name` in `folder` (`last.ckpt.tmp`, `last.ckpt.tmp.partial`): a save of it
    began and never finished."""
    return sorted(folder.glob(f"{name}.ckpt{TMP_SUFFIX}*")) if folder.is_dir() else []


def remove_leftovers(run_dir: Path) -> None:
    """Delete what killed writers left in a run folder: checkpoint staging files, and `.NAME.<pid>` record copies
    of processes that are gone. Called only when a run is resumed, so no writer of its own is running."""
    folder = run_dir / "checkpoints"
    staged = list(folder.glob(f"*{TMP_SUFFIX}")) + list(folder.glob("*.partial")) if folder.is_dir() else []
    for path in staged:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for path in run_dir.glob(".*.*") if run_dir.is_dir() else []:
        pid = path.suffix.removeprefix(".")
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StagedCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, staging each file beside its target instead of in the temporary folder.

    Lightning stages local saves with a `tempfile.mkstemp` in $TMPDIR and moves them over: a kill leaves the copy
    there, a full disk reads as "Invalid cross-device link", and a full $TMPDIR names no path. Staged beside the
    target, the final step is one `os.replace` on the same filesystem.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = final.with_name(final.name + ".partial")
        try:
            with staged.open("wb") as file:
                torch.save(checkpoint, file)
            os.replace(staged, final)
        except BaseException as error:  # torch.save reports a full disk as a RuntimeError: no stray copy either way
            staged.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                raise OSError(error.errno, f"no space left on the device of {final.parent} while saving {final.name}; "
                                           "free space there or set --runs_dir to a disk with room") from error
            raise


def use_staged_io(strategy: Any) -> None:
    """Give `strategy` StagedCheckpointIO when it uses Lightning's default torch checkpoint IO."""
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = StagedCheckpointIO()

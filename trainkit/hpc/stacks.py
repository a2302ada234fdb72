"""Hang forensics: each rank's Python stacks in the run folder (`stacks/rank<N>.txt`), and which ranks wait at which
collective and which are elsewhere.

A rank writes its stacks on SIGQUIT (`kill -QUIT <pid>`, Ctrl-\\ in its terminal), from faulthandler's C signal
handler, so even a rank blocked inside a collective answers; the DistributedGuard sends it to the ranks on its host
when a collective times out. SIGUSR1 stays the preemption signal (save and stop).
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import socket
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import IO

STACKS_DIR = "stacks"
SETUP_ATTEMPTS = 20
"""Tries to create the shared folder and open this rank's file while other ranks may remove the folder."""
DUMP_SIGNAL = signal.SIGQUIT
NCCL_FLIGHT_RECORDER = {
    "TORCH_NCCL_TRACE_BUFFER_SIZE": "2000",  # the last 2000 collectives of each rank, with their state
    "TORCH_NCCL_DUMP_ON_TIMEOUT": "1",  # written when the NCCL watchdog sees a timeout
    "TORCH_NCCL_DESYNC_DEBUG": "1",  # the watchdog's message names the rank that never joined
}
"""torch's NCCL flight recorder, set on CUDA runs of several processes (values the user exported win)."""

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+),? in (?P<func>\S+)')


class StackDumps:
    """This rank's stack file: SIGQUIT writes every thread's stack to it; a timed-out collective's traceback too."""

    def __init__(self, folder: str | Path, rank: int) -> None:
        """Args:
        folder: the run's stacks folder.
        rank: this process's global rank (the file is `rank<rank>.txt`).
        """
        self.path = Path(folder) / f"rank{rank}.txt"
        self._file: IO[str] | None = None

    def install(self) -> StackDumps:
        """Open the file and let SIGQUIT write this process's stacks to it (the handler needs an open file)."""
        for attempt in range(SETUP_ATTEMPTS):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a")
                break
            except (FileExistsError, FileNotFoundError):  # another rank removed the empty folder meanwhile
                if attempt == SETUP_ATTEMPTS - 1:
                    raise  # not a race: e.g. a file where the folder should be
        faulthandler.register(DUMP_SIGNAL, file=self._file, all_threads=True, chain=False)
        return self

    def uninstall(self) -> None:
        """Restore SIGQUIT and remove the file (and the folder) when nothing was written."""
        if self._file is None:
            return
        faulthandler.unregister(DUMP_SIGNAL)
        self._file.close()
        self._file = None
        if self.path.stat().st_size == 0:
            self.path.unlink()
            with suppress(OSError):  # other ranks' files are still in it, or another rank removed it first
                self.path.parent.rmdir()

    def write_exception(self, exception: BaseException) -> None:
        """Append where `exception` was raised, most recent call first, in faulthandler's format."""
        frames = traceback.extract_tb(exception.__traceback__)
        lines = [f"Traceback of {type(exception).__name__} (most recent call first):"]
        lines += [f'  File "{frame.filename}", line {frame.lineno} in {frame.name}' for frame in reversed(frames)]
        with self.path.open("a") as file:
            file.write("\n".join(lines) + "\n\n")


def whereabouts() -> tuple[str, int]:
    """(host name, process id): what a rank tells the others at setup, so that one can signal it later."""
    return socket.gethostname(), os.getpid()


def signal_local_peers(peers: list[tuple[str, int]], rank: int) -> list[int]:
    """Send SIGQUIT to the other ranks on this host; the ranks signalled."""
    host = socket.gethostname()
    sent = []
    for peer, (peer_host, pid) in enumerate(peers):
        if peer != rank and peer_host == host:
            try:
                os.kill(pid, DUMP_SIGNAL)
                sent.append(peer)
            except OSError:
                continue  # already gone
    return sent


def wait_for_stacks(folder: str | Path, ranks: list[int], timeout: float = 5.0) -> None:
    """Wait until each of `ranks` has written its stack file, or `timeout` seconds (a frozen rank never will)."""
    deadline = time.monotonic() + timeout
    paths = [Path(folder) / f"rank{rank}.txt" for rank in ranks]
    while time.monotonic() < deadline and not all(p.is_file() and p.stat().st_size > 0 for p in paths):
        time.sleep(0.1)
    time.sleep(0.2)  # a rank with many threads may still be writing the last of them


def whereabout_line(folder: str | Path, world_size: int, peers: list[tuple[str, int]] | None = None) -> str:
    """One line naming, for each rank, the collective it waits at, or where it is instead."""
    folder = Path(folder)
    parts = []
    for rank in range(world_size):
        path = folder / f"rank{rank}.txt"
        text = path.read_text(errors="replace") if path.is_file() else ""
        if text.strip():
            parts.append(f"rank {rank} {where(text)}")
            continue
        hint = ""
        if peers and rank < len(peers):
            host, pid = peers[rank]
            hint = f" (frozen, or on host {host}: `kill -QUIT {pid}` there writes it)"
        parts.append(f"rank {rank}: no stack{hint}")
    return f"trainkit: hang forensics ({folder}): " + "; ".join(parts)


def stacks_line(run_dir: str | Path) -> str | None:
    """The whereabouts line for the stacks a run's ranks wrote (after a timeout or a SIGQUIT), or None. A running
    fit holds an empty file per rank (where a SIGQUIT would write): that is not a stack."""
    folder = Path(run_dir) / STACKS_DIR
    ranks = [int(m[1]) for p in folder.glob("rank*.txt")
             if (m := re.fullmatch(r"rank(\d+)\.txt", p.name)) and p.stat().st_size > 0]
    return whereabout_line(folder, max(ranks) + 1) if ranks else None


def where(text: str) -> str:
    """'waits at <collective> (...)' or 'is elsewhere: <function> at <file:line>', from one rank's stack file."""
    threads = [_frames(block) for block in re.split(r"\n(?=\S)", text.strip())]
    threads = [frames for frames in threads if frames]
    for frames in threads:
        collective = _collective(frames)
        if collective:
            return f"waits at {collective}"
    if not threads:
        return "is elsewhere: (no Python frame in its stack)"
    main = max(threads, key=len)
    file, line, func = main[0]
    return f"is elsewhere: {func} at {_short(file)}:{line}"


def _frames(block: str) -> list[tuple[str, int, str]]:
    """(file, line, function) of a thread's stack, most recent call first."""
    return [(m["file"], int(m["line"]), m["func"]) for m in _FRAME.finditer(block)]


def _collective(frames: list[tuple[str, int, str]]) -> str | None:
    """The collective a stack waits in: its innermost frames, inside torch, are a torch.distributed call, DDP's
    forward sync, or a backward (where DDP all-reduces the gradients)."""
    inside_torch = []
    for frame in frames:
        if "/torch/" not in frame[0].replace(os.sep, "/"):
            break
        inside_torch.append(frame)
    caller = frames[len(inside_torch)] if len(inside_torch) < len(frames) else None
    called = f" from {caller[2]} at {_short(caller[0])}:{caller[1]}" if caller else ""
    distributed = [func for file, _, func in inside_torch if _is_distributed(file)]
    if distributed:
        public = [func for func in distributed if not func.startswith("_") and func != "wrapper"]
        return f"torch.distributed {(public or distributed)[0]}{called}"
    if any("/torch/autograd/" in file.replace(os.sep, "/") for file, _, _ in inside_torch):
        return f"backward (DDP's gradient all-reduce){called}"
    return None


def _is_distributed(file: str) -> bool:
    path = file.replace(os.sep, "/")
    return "/torch/distributed/" in path or path.endswith("/torch/nn/parallel/distributed.py")


def _short(file: str) -> str:
    """A frame's file from its package folder on (site-packages/x/y.py -> x/y.py)."""
    parts = Path(file).parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1:])
    return Path(*parts[-3:]).as_posix()

"""Provenance: `provenance.json` in every run folder says what ran, where, from which code, and how it ended.

Written when the run starts (state `running`, with pid and host), and rewritten when it finishes, fails or is
interrupted. A run killed outright (SIGKILL, node loss) never writes its end: `trainkit runs` then finds a `running`
record whose process is gone and calls the run `interrupted`.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from trainkit.errors import ConfigError
from trainkit.hpc.slurm_env import slurm_job_id

PROVENANCE_FILE = "provenance.json"
_PACKAGES = ("trainkit", "torch", "lightning", "timm", "torchmetrics")


class Provenance(Callback):
    """Writes the run's provenance record into its folder at the start and the end of each stage (rank 0 only)."""

    def __init__(self, argv: list[str] | None = None) -> None:
        """Args:
        argv: the command's arguments after `trainkit` (default: this process's sys.argv).
        """
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.started = time.time()  # when the CLI was built: a failure during data setup still gets a start
        self.path: Path | None = None
        self.record: dict[str, Any] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        run_dir = _run_dir(trainer, broadcast=True)
        if not trainer.is_global_zero or run_dir is None:
            return
        if not self.record:
            self.path = run_dir / PROVENANCE_FILE
            self.record = _start_record(self.argv, self.started, trainer, read_provenance(run_dir))
        self._write(state="running", stage=stage, ended=None)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.is_global_zero and self.record:
            state = "interrupted" if trainer.interrupted else "finished"
            self._write(state=state, stage=stage, ended=_now(), epochs=trainer.current_epoch,
                        steps=trainer.global_step)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        if not self.record:  # failed before setup (e.g. in the DataModule's setup): record it all the same
            run_dir = _run_dir(trainer, broadcast=False)
            if run_dir is None:
                return
            self.path = run_dir / PROVENANCE_FILE
            self.record = _start_record(self.argv, self.started, trainer, read_provenance(run_dir))
        state = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        error = " ".join(str(exception).split())[:500]
        self._write(state=state, ended=_now(), error=f"{type(exception).__name__}: {error}".rstrip(": "),
                    bad_input=_is_bad_input(exception))

    def _write(self, **changes: Any) -> None:
        self.record.update(changes)
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
        os.replace(partial, self.path)  # a reader never sees half a file


def _is_bad_input(exception: BaseException) -> bool:
    """A ConfigError anywhere in the chain: the user's input was refused, so the run never held work to keep."""
    seen: list[BaseException] = []
    error: BaseException | None = exception
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return any(isinstance(e, ConfigError) for e in seen)


def read_provenance(run_dir: str | Path) -> dict[str, Any]:
    """The run's provenance record, or {} when it has none (or it cannot be read)."""
    path = Path(run_dir) / PROVENANCE_FILE
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def run_state(record: dict[str, Any]) -> str:
    """finished, failed, interrupted or running; a `running` record whose process is gone is `interrupted`."""
    state = str(record.get("state") or "unknown")
    if state != "running":
        return state
    if record.get("host") != socket.gethostname():
        return "running"  # another machine's process cannot be checked from here
    return "running" if _alive(record.get("pid"), record.get("process_start")) else "interrupted"


def _start_record(argv: list[str], started: float, trainer: Trainer, previous: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "command": shlex.join(["trainkit", *argv]),
        "argv": argv,
        "cwd": os.getcwd(),
        "python": sys.executable,
        "versions": _versions(),
        "git": _git_state(Path.cwd()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "devices": _devices(trainer),
        "slurm_job_id": slurm_job_id() or os.environ.get("SLURM_JOB_ID"),
        "started": _iso(started),
    }
    if previous:  # a resumed run keeps what came before it
        history = list(previous.pop("history", []))
        record["history"] = [*history, {k: previous.get(k) for k in ("command", "state", "started", "ended")}]
        record["first_started"] = previous.get("first_started") or previous.get("started")
    return record


def _run_dir(trainer: Trainer, broadcast: bool) -> Path | None:
    """The run (or evaluation) folder of trainkit's CSV logger; None without it (probes such as lr-find)."""
    from trainkit.loggers import RunCSVLogger

    if not trainer.loggers or not isinstance(trainer.loggers[0], RunCSVLogger):
        return None
    log_dir = trainer.log_dir if broadcast else trainer.loggers[0].log_dir
    return Path(log_dir) if log_dir else None


def _versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            versions[name] = str(getattr(module, "__version__", "not installed"))
    return versions


def _git_state(cwd: Path) -> dict[str, Any] | None:
    """Commit, branch and dirty state of the repository holding `cwd`, or None outside one (or without git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    changed = (git("status", "--porcelain") or "").splitlines()
    return {"commit": commit, "branch": git("rev-parse", "--abbrev-ref", "HEAD"), "dirty": bool(changed),
            "changed_files": len(changed), "root": git("rev-parse", "--show-toplevel")}


def _devices(trainer: Trainer) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "devices": trainer.num_devices, "nodes": trainer.num_nodes, "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__, "precision": str(trainer.precision),
    }
    if torch.cuda.is_available():
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for the run;
    None where /proc cannot tell, and "zombie" for a process that has ended but not been reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return "zombie" if fields[0] == "Z" else fields[19]


def _alive(pid: Any, process_start: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _process_start(pid)
    return now != "zombie" and (process_start is None or now in (None, process_start))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _now() -> str:
    return _iso(time.time())

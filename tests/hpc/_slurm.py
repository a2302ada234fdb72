"""A one-node SLURM cluster on localhost for the integration test: installed from Debian packages when absent,
started with its own slurm.conf in a temporary folder, stopped by the process ids in its pid files."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
LOCK = Path("/tmp/trainkit-slurm.lock")
"""Held while a cluster runs: one at a time per machine (munge, daemons), whoever starts it (CI, a test, a person)."""


def ensure_installed() -> None:
    """Install SLURM and munge with apt-get when missing; skip the test with the reason when that is impossible."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it needs root (apt-get install " + " ".join(PACKAGES) + ")")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.skip(f"could not install SLURM ({' '.join(command)}): {done.stderr.strip()[-300:]}")


def _munge_works() -> bool:
    with suppress(OSError):
        encoded = subprocess.run(["munge", "-n"], capture_output=True, check=False, timeout=10)
        decoded = subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True, check=False, timeout=10)
        return encoded.returncode == 0 and decoded.returncode == 0
    return False


def _start_munge() -> int | None:
    """Start munged unless one already answers; return the pid of the one we started."""
    if _munge_works():
        return None
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    for folder in ("/etc/munge", "/var/log/munge", "/run/munge", "/var/lib/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True, timeout=30)
    for _ in range(50):
        if _munge_works():
            break
        time.sleep(0.1)
    pid_file = Path("/run/munge/munged.pid")
    return int(pid_file.read_text()) if pid_file.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_conf(folder: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=trainkit-test",
        f"SlurmctldHost={host}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",  # never clash with a cluster already running
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",  # no cgroups in a container
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", "JobRequeue=1", "MpiDefault=none",
        "KillWait=10", "MinJobAge=600", "SchedulerParameters=sched_interval=2",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    return conf


def _stop(pid_file: Path) -> None:
    with suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextmanager
def local_slurm(folder: Path) -> Iterator[dict[str, str]]:
    """Run slurmctld + slurmd for the duration; yields the environment (SLURM_CONF) for slurm commands."""
    ensure_installed()
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd as SlurmUser=root needs root")
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _cluster(folder) as env:
            yield env


@contextmanager
def _cluster(folder: Path) -> Iterator[dict[str, str]]:
    munge_pid = _start_munge()
    conf = _write_conf(folder)
    env = os.environ | {"SLURM_CONF": str(conf)}
    try:
        subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False)
            if state.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the SLURM node never became idle; see {folder}/slurmctld.log and slurmd.log")
        yield env
    finally:
        _stop(folder / "slurmd.pid")
        _stop(folder / "slurmctld.pid")
        if munge_pid is not None:
            with suppress(ProcessLookupError):
                os.kill(munge_pid, signal.SIGTERM)


def job_field(env: dict[str, str], job_id: str, field: str) -> str:
    """One field (JobState, Restarts, ExitCode, ...) of `scontrol show job`."""
    shown = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True, check=False)
    for token in shown.stdout.split():
        key, _, value = token.partition("=")
        if key == field:
            return value
    return ""

"""A one-node SLURM cluster on localhost for the integration test (the Debian packages are installed by .ci/run),
started with its own slurm.conf in a temporary folder, stopped by the process ids in its pid files."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
LOCK = "/tmp/trainkit-slurm.lock"


def ensure_installed() -> None:
    """Skip the test, saying why, when SLURM or munge is missing: .ci/run installs them (as root) before the tests,
    and there (TRAINKIT_CLUSTER_TESTS=required) a missing one fails the test instead."""
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(tool) is None]
    if missing:
        reason = f"SLURM is not installed ({', '.join(missing)} missing); .ci/run installs it as root: " \
                 f"apt-get install {' '.join(PACKAGES)}"
        (pytest.fail if os.environ.get("TRAINKIT_CLUSTER_TESTS") == "required" else pytest.skip)(reason)


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


def _write_conf(folder: Path, nodes: dict[str, str] | None = None) -> Path:
    """slurm.conf for one node (this host), or for `nodes` (name -> address) with the controller on the first."""
    host = socket.gethostname().split(".")[0]
    if nodes:
        controller = f"{host}({next(iter(nodes.values()))})"
        node_lines = [f"NodeName={name} NodeAddr={address} NodeHostname={name} CPUs=1 RealMemory=2000 State=UNKNOWN"
                      for name, address in nodes.items()]
        names, suffix = ",".join(nodes), "-%n"  # one spool, pid file and log per slurmd
    else:
        controller, names, suffix = host, host, ""
        # Two CPUs at least, whatever the hardware reports (config_overrides): tests run two tasks side by side, and
        # on a host with one core of two threads CR_Core would give them one at a time.
        node_lines = [f"NodeName={host} CPUs={max(2, os.cpu_count() or 1)} RealMemory=4000 State=UNKNOWN"]
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=trainkit-test",
        f"SlurmctldHost={controller}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",  # never clash with a cluster already running
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool{suffix}",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd{suffix}.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd{suffix}.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",  # no cgroups in a container
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SlurmdParameters=config_overrides",
        "ReturnToService=2", "JobRequeue=1", "MpiDefault=none",
        "KillWait=10", "MinJobAge=600", "SchedulerParameters=sched_interval=1",
        *node_lines,
        f"PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    for sub in ("state", "spool", *(f"spool-{name}" for name in nodes or ())):
        (folder / sub).mkdir()
    return conf


@contextmanager
def cluster_lock() -> Iterator[None]:
    """Hold /tmp/trainkit-slurm.lock so that no two SLURM clusters (tests, helpers) run at once."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_idle(env: dict[str, str], folder: Path, nodes: int, prefix: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run([*prefix, "sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True,
                               check=False)
        if state.stdout.split() == ["idle"] * nodes:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the SLURM nodes never became idle; see the logs in {folder}")


def _stop(pid_file: Path) -> None:
    """Stop a daemon of the throwaway test cluster: SIGTERM, and SIGKILL after 1 s (slurmctld spends ~3 s saving a
    state that nobody reads again)."""
    with suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(10):
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextmanager
def local_slurm(folder: Path) -> Iterator[dict[str, str]]:
    """Run slurmctld + slurmd for the duration; yields the environment (SLURM_CONF) for slurm commands."""
    ensure_installed()
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd as SlurmUser=root needs root")
    with cluster_lock():
        munge_pid = _start_munge()
        conf = _write_conf(folder)
        env = os.environ | {"SLURM_CONF": str(conf)}
        try:
            subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True, timeout=30)
            subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True, timeout=30)
            _wait_idle(env, folder, 1, [])
            yield env
        finally:
            _stop(folder / "slurmd.pid")
            _stop(folder / "slurmctld.pid")
            _stop_munge(munge_pid)


@contextmanager
def two_node_slurm(folder: Path, hosts) -> Iterator[dict[str, str]]:  # noqa: ANN001  (two _netns.Host)
    """slurmctld and node 1's slurmd in the first namespace, node 2's slurmd in the second; yields the environment.

    slurmd runs in the namespace's network only (nsenter --net) with that namespace's /etc/hosts bound in a private
    mount namespace: `ip netns exec` would also remount /sys, hiding the cgroup tree that slurmd insists on reading.
    Run slurm commands through hosts[0].command(...): the controller listens on the first namespace's address.
    """
    ensure_installed()
    with cluster_lock():
        munge_pid = _start_munge()
        conf = _write_conf(folder, {host.hostname: host.address for host in hosts})
        env = os.environ | {"SLURM_CONF": str(conf)}
        try:
            subprocess.run(hosts[0].command("slurmctld", "-f", str(conf)), env=env, check=True, timeout=30)
            for host in hosts:
                daemon = f"mount --bind /etc/netns/{host.netns}/hosts /etc/hosts && exec slurmd -f {conf} " \
                         f"-N {host.hostname}"
                subprocess.run(["nsenter", f"--net=/run/netns/{host.netns}", "unshare", "--mount", "sh", "-c", daemon],
                               env=env, check=True, timeout=30)
            _wait_idle(env, folder, len(hosts), hosts[0].command())
            yield env
        finally:
            for host in hosts:
                _stop(folder / f"slurmd-{host.hostname}.pid")
            _stop(folder / "slurmctld.pid")
            _stop_munge(munge_pid)


def _stop_munge(pid: int | None) -> None:
    if pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def job_field(env: dict[str, str], job_id: str, field: str, prefix: tuple[str, ...] = ()) -> str:
    """One field (JobState, Restarts, ExitCode, ...) of `scontrol show job` (run after `prefix`, e.g. ip netns exec)."""
    shown = subprocess.run([*prefix, "scontrol", "show", "job", job_id], env=env, capture_output=True, text=True,
                           check=False)
    for token in shown.stdout.split():
        key, _, value = token.partition("=")
        if key == field:
            return value
    return ""


def start_requeued_job(env: dict[str, str], job_id: str, prefix: tuple[str, ...] = ()) -> None:
    """Let a requeued, pending job start in 2 s instead of the ~2 minutes (BeginTime) SLURM waits; a real cluster
    would start it when it has room. Not at once: slurmd revokes the killed run's credential with a one-second clock,
    and a relaunch within the same second is killed as "Job credential revoked" (the job then reads FAILED)."""
    subprocess.run([*prefix, "scontrol", "update", f"JobId={job_id}", "StartTime=now+2"], env=env, check=True)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)

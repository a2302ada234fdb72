"""Two hosts on one machine: network namespaces joined by a veth pair, each with its own address and hostname file.

All traffic stays on the two addresses assigned here (10.231.0.1 and .2 inside the namespaces) or on loopback;
nothing is routed elsewhere. Namespaces, the veth pair and every process started in them are removed by process id
when the context ends.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ._runs import ForkedRun, env

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000  # <sched.h>
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18  # <sys/mount.h>
SUBNET = "10.231.0"
INTERFACE = "tk0"  # the veth end has this name inside each namespace (GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME)


@dataclass
class Host:
    """One namespace: its name, address and hostname as the other host resolves it."""

    netns: str
    address: str
    hostname: str
    processes: list[ForkedRun] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        """`args` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *args]

    def enter(self) -> None:
        """Move this (forked, single-threaded) process into the namespace as `ip netns exec` does: its network, and
        a private mount namespace in which /etc/hosts is the namespace's hosts file. (os.setns is Python 3.12+.)"""
        libc = ctypes.CDLL(None, use_errno=True)
        netns = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        hosts = str(Path("/etc/netns") / self.netns / "hosts").encode()
        steps = [("setns", lambda: libc.setns(netns, CLONE_NEWNET)), ("unshare", lambda: libc.unshare(CLONE_NEWNS)),
                 ("mount --make-rprivate /", lambda: libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)),
                 ("mount --bind hosts", lambda: libc.mount(hosts, b"/etc/hosts", None, MS_BIND, None))]
        for what, step in steps:
            if step() != 0:
                raise OSError(ctypes.get_errno(), f"{what} into {self.netns}: {os.strerror(ctypes.get_errno())}")
        os.close(netns)

    def fork(self, args: list[str], log: Path, env: dict[str, str], cwd: Path) -> ForkedRun:
        """`trainkit ARGS` in a fork of this process inside this host (no fresh interpreter: ~7 s of CPU less); it is
        killed (by pid) when the hosts are removed."""
        process = ForkedRun(*args, cwd=cwd, log=log, environ=env, enter=self.enter)
        self.processes.append(process)
        return process


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _ensure_ip() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("`ip` is missing; .ci/run installs it as root: apt-get install iproute2")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"network namespaces do not work here: {probe.stderr.strip()}")


def _kill(process: ForkedRun) -> None:
    with suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@contextmanager
def two_hosts(names: tuple[str, str] = ("node1", "node2")) -> Iterator[tuple[Host, Host]]:
    """Two namespaces `tk<pid>a`/`tk<pid>b` joined by a veth pair; in each, `names` resolve to the two addresses."""
    _ensure_ip()
    tag = f"tk{os.getpid() % 100000}"
    hosts = (Host(f"{tag}a", f"{SUBNET}.1", names[0]), Host(f"{tag}b", f"{SUBNET}.2", names[1]))
    hosts_file = "127.0.0.1 localhost\n" + "".join(f"{h.address} {h.hostname}\n" for h in hosts)
    made: list[str] = []
    try:
        for host in hosts:
            _ip("netns", "add", host.netns)
            made.append(host.netns)
            # `ip netns exec` bind-mounts /etc/netns/<name>/hosts over /etc/hosts for what runs inside.
            etc = Path("/etc/netns") / host.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file)
        _ip("link", "add", f"{tag}x", "type", "veth", "peer", "name", f"{tag}y")
        for host, end in zip(hosts, ("x", "y"), strict=True):
            _ip("link", "set", f"{tag}{end}", "netns", host.netns)
            _ip("-n", host.netns, "link", "set", f"{tag}{end}", "name", INTERFACE)
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", INTERFACE)
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "link", "set", INTERFACE, "up")
        yield hosts
    finally:
        for host in hosts:
            for process in host.processes:
                _kill(process)
        for netns in made:  # deleting a namespace deletes the veth end inside it, and so the pair
            with suppress(RuntimeError):
                _ip("netns", "del", netns)
            shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)


def start_nodes(hosts: tuple[Host, Host], args: list[str], cwd: Path, port: int) -> list[ForkedRun]:
    """`trainkit fit ARGS` on both hosts, node 0 on the first, each one process (a fork of this one, inside its
    host); the run folder is shared, as on a cluster."""
    processes = []
    for node, host in enumerate(hosts):
        node_env = env() | {"MASTER_ADDR": hosts[0].hostname, "MASTER_PORT": str(port), "NODE_RANK": str(node),
                            "WORLD_SIZE": "2", "GLOO_SOCKET_IFNAME": INTERFACE}
        processes.append(host.fork(["fit", *args], cwd / f"node{node}.log", node_env, cwd))
    return processes


def wait_all(processes: list[ForkedRun], timeout: float) -> list[int | None]:
    """Exit codes of `processes` after at most `timeout` seconds in all (None for those still running)."""
    deadline = time.monotonic() + timeout
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    return [process.poll() for process in processes]

"""Topology checks that run before the first collective: a process layout that contradicts the allocation, or a
rendezvous address that cannot be reached, ends the run with one line instead of a hang at the rendezvous."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Mapping

from trainkit.hpc.slurm_env import slurm_layout

ELASTIC_VARS = ("GROUP_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


def _int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "")
    return int(value) if value.isdigit() else None


def topology_problem(num_nodes: int, devices: int, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why `num_nodes` x `devices` processes cannot all meet in this launch environment, or None when it fits."""
    world = num_nodes * devices
    layout = f"--trainer.num_nodes {num_nodes} x --trainer.devices {devices} = {world} processes"
    if (slurm := slurm_layout(environ)) is not None:
        nodes, tasks, step_tasks = slurm.nodes, slurm.tasks, slurm.step_tasks
        if nodes is not None and nodes != num_nodes:
            return (f"the SLURM job has {nodes} nodes but {layout}; set --trainer.num_nodes {nodes} "
                    "(trainkit slurm sets it from --nodes)")
        if tasks is not None and tasks != world:
            return (f"the SLURM job has {tasks} tasks but {layout}; use --ntasks-per-node {devices} (one task per "
                    "device) or set --trainer.devices to the tasks per node")
        if world > 1 and step_tasks is None:
            return (f"the SLURM job has {tasks} tasks but this process was not started by srun, so the others never "
                    "start; put `srun` before the python command (the scripts of trainkit slurm do)")
        if step_tasks is not None and step_tasks != world:
            return f"srun started {step_tasks} tasks but {layout}; run srun with the job's task count"
        return None
    if world == 1 or any(name in environ for name in ELASTIC_VARS):
        return None  # torchrun checks its own layout
    declared, node_rank = _int(environ, "WORLD_SIZE"), _int(environ, "NODE_RANK")
    if declared is not None and declared != world:
        return f"WORLD_SIZE={declared} but {layout}; make them agree on every node"
    if node_rank is not None and node_rank >= num_nodes:
        return f"NODE_RANK={node_rank} but there are only {num_nodes} nodes (ranks 0..{num_nodes - 1})"
    if num_nodes > 1 and "MASTER_ADDR" not in environ:
        return (f"--trainer.num_nodes {num_nodes} without MASTER_ADDR: every node would wait for itself; set "
                "MASTER_ADDR (node 0's address), MASTER_PORT and NODE_RANK on every node")
    return None


def rendezvous_problem(address: str, port: int, global_rank: int, timeout: float) -> str | None:
    """Why the rendezvous at address:port (hosted by global rank 0) cannot work for this process, or None.

    Rank 0 checks that the address is one of its own; the others try a TCP connection for up to `timeout` seconds
    (rank 0 may still be starting), which also finds a wrong address, a missing route or a firewall.
    """
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"MASTER_ADDR {address} does not resolve ({error.strerror}); set it to node 0's address or hostname"
    if global_rank == 0:
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((sockaddr[0], 0))
            except OSError as error:
                if error.errno != errno.EADDRNOTAVAIL:
                    return None
                return (f"MASTER_ADDR {address} ({sockaddr[0]}) is not an address of this host, but this process is "
                        "rank 0, which hosts the rendezvous; set MASTER_ADDR to node 0's address and NODE_RANK=0 "
                        "only there")
        return None
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while True:
        try:
            with socket.create_connection((address, port), timeout=min(5.0, max(timeout, 0.1))):
                return None
        except OSError as error:
            reason = error.strerror or type(error).__name__
        if time.monotonic() >= deadline:
            return (f"rank {global_rank} cannot reach the rendezvous at MASTER_ADDR={address} MASTER_PORT={port} "
                    f"after {timeout:.0f} s ({reason}); check that node 0 runs with the same command and that the "
                    "address is node 0's on a network every node shares")
        time.sleep(0.5)

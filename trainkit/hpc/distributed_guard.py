"""DistributedGuard: a multi-process run either starts, or ends with one line; it never waits forever for a peer."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer

from trainkit.errors import ConfigError
from trainkit.hpc.atomic import checkpoint_problem
from trainkit.hpc.stacks import (
    NCCL_FLIGHT_RECORDER,
    STACKS_DIR,
    StackDumps,
    signal_local_peers,
    wait_for_stacks,
    whereabout_line,
    whereabouts,
)
from trainkit.hpc.topology import rendezvous_problem, topology_problem

# gloo words a frozen peer's timeout as "Timed out waiting ..." or, on some runs, "Application timeout caused pair
# closure" (neither names gloo).
COLLECTIVE_ERRORS = ("gloo", "nccl", "timed out", "application timeout", "pair closure", "connection closed",
                     "connection reset", "watchdog")


class DistributedGuard(Callback):
    """Check the process layout and the rendezvous address before the first collective, bound every collective by
    a timeout, and when a peer dies say so in one line that names the last checkpoint. When a collective times out,
    every rank on the host writes its stacks to the run folder (`stacks/`) and one line says which rank waits where;
    SIGQUIT to a rank writes its stacks at any time."""

    def __init__(self, timeout: float = 600.0, rendezvous_timeout: float | None = None, check: bool = True) -> None:
        """Args:
        timeout: seconds a collective may wait for the other processes before the run ends; longer than the slowest
            save or validation that one rank does alone. Lightning's default is 1800.
        rendezvous_timeout: seconds the processes may take to meet at the start (a node whose job step starts late,
            a slow import on a shared file system); the same as `timeout` when not given. A short `timeout` that
            ends a hang quickly then does not also fail a slow start.
        check: check the process layout and MASTER_ADDR before the first collective.
        """
        for name, value in (("timeout", timeout), ("rendezvous_timeout", rendezvous_timeout)):
            if value is not None and value <= 0:
                raise ConfigError(f"distributed.{name} must be positive seconds, not {value}; e.g. 600")
        self.timeout = timeout
        self.rendezvous_timeout = timeout if rendezvous_timeout is None else rendezvous_timeout
        self.check = check
        self._sets_timeout = False
        self._waits = self.rendezvous_timeout  # what a collective waits now: the rendezvous bound until `setup`
        self._dumps: StackDumps | None = None
        self._peers: list[tuple[str, int]] = []

    @property
    def enabled(self) -> bool:
        """Always on: a run's world size is known only once the Trainer is built, and one process costs nothing."""
        return True

    def prepare_trainer(self, trainer: Trainer) -> None:
        """Run the checks and set the collective timeout on a just-built Trainer, before it starts any process group."""
        if trainer.num_nodes * trainer.num_devices <= 1:
            return
        strategy = trainer.strategy
        # A timeout given on the strategy itself (DDPStrategy(timeout=...)) wins over ours. The process group starts
        # with the rendezvous bound; `setup` narrows it to the collective one once every rank is there.
        self._sets_timeout = getattr(strategy, "_timeout", None) == default_pg_timeout
        if self._sets_timeout:
            strategy._timeout = timedelta(seconds=self.rendezvous_timeout)
        if torch.cuda.is_available():  # read by NCCL when the process group starts; the ranks inherit them
            for key, value in NCCL_FLIGHT_RECORDER.items():
                os.environ.setdefault(key, value)
        if not self.check:
            return
        environment = getattr(strategy, "cluster_environment", None)
        environ = dict(os.environ)
        if not isinstance(environment, SLURMEnvironment):
            environ = {k: v for k, v in environ.items() if not k.startswith("SLURM_")}
        problem = topology_problem(trainer.num_nodes, trainer.num_devices, environ)
        # One node whose processes Lightning starts itself meets on localhost: nothing to reach.
        remote = trainer.num_nodes > 1 or environment is not None and environment.creates_processes_externally
        if problem is None and environment is not None and remote:
            # LightningEnvironment knows its global rank only once the strategy sets it, after this point.
            rank = environment.node_rank() * trainer.num_devices + environment.local_rank() if isinstance(
                environment, LightningEnvironment) else environment.global_rank()
            problem = rendezvous_problem(environment.main_address, environment.main_port, rank,
                                         self.rendezvous_timeout)
        if problem is not None:
            raise ConfigError(problem)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Every rank reaches setup together: the one moment to learn where the others run without risking a hang.
        folder = Path(trainer.log_dir or trainer.default_root_dir) / STACKS_DIR
        self.teardown(trainer, pl_module, stage)
        self._dumps = StackDumps(folder, trainer.global_rank).install()
        self._peers = [whereabouts()]
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            self._peers = [("", 0)] * trainer.world_size
            torch.distributed.all_gather_object(self._peers, whereabouts())
            if self._sets_timeout and self.timeout != self.rendezvous_timeout:
                torch.distributed.set_timeout(timedelta(seconds=self.timeout))
            self._waits = self.timeout

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._dumps is not None:
            self._dumps.uninstall()
            self._dumps = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if trainer.world_size <= 1 or not _is_collective_failure(exception):
            self.teardown(trainer, pl_module, "")  # Lightning calls no callback's teardown after an exception
            return
        # No collective here: the peers are gone, and trainer.log_dir would broadcast.
        callback = trainer.checkpoint_callback
        last = getattr(callback, "last_model_path", "") or ""
        if not last and getattr(callback, "dirpath", None):
            last = str(Path(callback.dirpath) / "last.ckpt")
        if last and Path(last).exists():
            problem = checkpoint_problem(last)
            saved = f"the last checkpoint {last} is {'intact' if problem is None else 'broken: ' + problem}"
            then = "; resume with --ckpt_path last" if problem is None else ""
        else:
            saved, then = "no checkpoint was saved yet", ""
        print(f"trainkit: rank {trainer.global_rank} of {trainer.world_size} lost its peers (a collective failed or "
              f"waited over {self._waits:.0f} s: {_first_line(exception)}); {saved}{then}", file=sys.stderr,
              flush=True)
        self._hang_forensics(trainer, exception)

    def _hang_forensics(self, trainer: Trainer, exception: BaseException) -> None:
        """Write this rank's stack (where the collective waited) and have the ranks on this host write theirs."""
        if self._dumps is None:
            return
        # SIGQUIT stays registered: a peer that times out later still gets this rank's stacks, not a core dump.
        self._dumps.write_exception(exception)
        folder = self._dumps.path.parent
        wait_for_stacks(folder, signal_local_peers(self._peers, trainer.global_rank))
        line = whereabout_line(folder, trainer.world_size, self._peers)
        (folder / f"report_rank{trainer.global_rank}.txt").write_text(line + "\n")
        print(line, file=sys.stderr, flush=True)


def _is_collective_failure(exception: BaseException) -> bool:
    if isinstance(exception, torch.distributed.DistError):
        return True
    return isinstance(exception, RuntimeError) and any(word in str(exception).lower() for word in COLLECTIVE_ERRORS)


def _first_line(exception: BaseException) -> str:
    lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
    return (lines[0] if lines else type(exception).__name__)[:200]

"""Helpers for the hpc tests: run the real `trainkit` CLI in a subprocess and read what it left behind."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

from tests.conftest import DIGITS_CONFIG, DOCTOR_OFF, REPO, run_trainkit  # noqa: F401  (re-exported to the hpc tests)
from tests.metrics_csv import last_values

# The digits experiment shrunk to seconds: timm's tiny test_resnet on 16 px, 8 batches of 32 per epoch.
SMALL_DIGITS = [
    "--config", str(DIGITS_CONFIG),
    "--model.init_args.backbone", "test_resnet",
    "--data.init_args.image_size", "16",
    "--data.init_args.batch_size", "32",
    "--trainer.limit_train_batches", "8",
    "--trainer.limit_val_batches", "2",
    "--trainer.limit_test_batches", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
    *DOCTOR_OFF,
]

# A ViT has no BatchNorm, whose per-process batch statistics would differ from the global batch's (SyncBatchNorm
# needs CUDA); with LayerNorm only, the averaged gradients of two half batches equal the gradient of the whole batch.
# Plain SGD: Adam's first steps divide each gradient by its own magnitude, so float noise in near-zero gradients
# (all-reduce of two halves vs one mean) would grow into visible differences that say nothing about DDP.
VIT = ["--model.init_args.backbone", "test_vit", "--model.init_args.backbone_kwargs", "{img_size: 16, patch_size: 4}",
       "--model.init_args.optimizer.name", "sgd", "--model.init_args.optimizer.lr", "0.05",
       "--trainer.max_epochs", "1", "--test_after_fit", "false", "--trainer.accelerator", "cpu"]


def env() -> dict[str, str]:
    """This process's environment with the repo importable and one thread (the same float order in every run)."""
    repo = str(REPO)
    extra = {"PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
             "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return dict(os.environ) | extra


def start(*args: str, cwd: Path) -> subprocess.Popen:
    """Start `trainkit ARGS` in `cwd`; its output goes to cwd/<pid>.log."""
    path = cwd / f"trainkit-{time.monotonic_ns()}.log"
    with path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "trainkit", *args], cwd=cwd, env=env(), stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
    process.log_path = path  # type: ignore[attr-defined]
    return process


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class ForkedRun:
    """`trainkit ARGS` in a fork of this test process, where a test needs a process of its own (to kill it, to run it
    beside the test, as a simulated host's node, as DDP's rank 0): a fresh interpreter pays ~7 s of CPU importing
    Lightning before it trains, a fork has it loaded. It answers what the tests ask of a `start`ed Popen (pid, poll,
    wait, returncode, log_path: cwd/trainkit-*.log) and runs on one thread with `start`'s environment (`env()`), as
    the in-process references do; `environ` replaces that environment and `enter` runs first in the child (e.g.
    joining a network namespace). As DDP's rank 0 it starts the other ranks as Lightning does: afresh, by running
    `script` (the `trainkit` console script)."""

    def __init__(self, *args: str, cwd: Path, log: Path | None = None, environ: dict[str, str] | None = None,
                 enter: Callable[[], None] | None = None, main: Callable[..., int] = run_trainkit,
                 script: Path | None = None) -> None:
        """`main(*args)` (`trainkit ARGS` by default) runs as `script ARGS` would (the console script by default)."""
        self.log_path = log or cwd / f"trainkit-{time.monotonic_ns()}.log"
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            script = script or Path(sys.executable).with_name("trainkit")
            os._exit(self._child(main, script, [str(arg) for arg in args], cwd, environ, enter))

    def _child(self, main: Callable[..., int], script: Path, args: list[str], cwd: Path,
               environ: dict[str, str] | None, enter: Callable[[], None] | None) -> int:
        """Run the command with its output in the log; the exit code (1 on an uncaught error)."""
        code = 1
        try:
            os.environ.clear()
            os.environ.update(env() if environ is None else environ)
            log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            sys.stdout = sys.stderr = open(log, "w", buffering=1)  # pytest's capture objects would swallow it
            warnings.showwarning = _print_warning  # pytest records the test's warnings instead of printing them
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                for handler in list(getattr(logger, "handlers", [])):
                    if type(handler).__module__.startswith("_pytest"):  # caplog's, for the parent's report
                        logger.removeHandler(handler)
                    elif isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                        handler.stream = sys.stderr  # not setStream: it flushes the old one, maybe a closed capture
            if enter is not None:
                enter()
            os.chdir(cwd)
            # What Lightning's DDP launcher reruns for the other ranks: `python <argv[0]> <argv[1:]>` when __main__
            # has no module spec (it has one, pytest's, under `python -m pytest`).
            sys.argv = [str(script), *args]
            sys.modules["__main__"].__spec__ = None
            torch.set_num_threads(1)
            code = main(*args)
        except BaseException:  # noqa: BLE001  (the child must reach os._exit whatever happens)
            traceback.print_exc()
        finally:
            with suppress(Exception):
                sys.stdout.flush()
        return code

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"trainkit (fork {self.pid})", timeout)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]


def finish(process: subprocess.Popen | ForkedRun, timeout: float = 600) -> str:
    """Wait for a `start`ed process; return its output, failing the test with it when the exit code is not 0."""
    code = process.wait(timeout=timeout)
    output = process.log_path.read_text()  # type: ignore[attr-defined]
    assert code == 0, f"trainkit exited with {code}:\n{output[-4000:]}"
    return output


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The model weights stored in a checkpoint."""
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def last_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of every metric in a run's metrics.csv."""
    return {key: float(value) for key, value in last_values(run_dir / "metrics.csv").items()}


def kill_when_saved(process: subprocess.Popen | ForkedRun, checkpoint: Path, timeout: float = 300) -> dict:
    """SIGKILL `process` as soon as `checkpoint` exists; return that checkpoint's contents."""
    deadline = time.monotonic() + timeout
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run was killed before it saved its first checkpoint"
    return torch.load(checkpoint, map_location="cpu", weights_only=True)


def kill_tree(process: subprocess.Popen | ForkedRun) -> None:
    """SIGKILL a `start`ed process and the processes it started (Lightning's DDP children), by their ids."""
    pids, todo = [], [process.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        with suppress(OSError):
            todo += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def kill_at_first_checkpoint(runs: dict[Path, subprocess.Popen | ForkedRun], timeout: float = 300) -> list[dict]:
    """SIGKILL each run (its process by the checkpoint it writes) as soon as that checkpoint appears; return them."""
    pending, deadline = dict(runs), time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for path, process in list(pending.items()):
            if path.exists() or process.poll() is not None:
                kill_tree(pending.pop(path))
        time.sleep(0.02)
    for path, process in runs.items():
        kill_tree(process)
        assert path.exists(), f"the run ended before its first checkpoint:\n{process.log_path.read_text()[-3000:]}"  # type: ignore[attr-defined]
    return [torch.load(path, map_location="cpu", weights_only=True) for path in runs]

"""Shared fixtures: a fixed seed, a private working folder, and a way to run the real `trainkit` CLI in-process."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything
from lightning_utilities.core.rank_zero import rank_zero_only

REPO = Path(__file__).resolve().parents[1]
DIGITS_CONFIG = REPO / "configs" / "classification" / "digits.yaml"
DOCTOR_OFF = ["--doctor.overfit_steps", "0", "--doctor.diagnose", "false"]


def tiny_argv(config: str | Path, *flags: str | Path, epochs: int = 1, **trainer: int) -> list[str]:
    """`--config CONFIG FLAGS...` and the trainer flags of a seconds-long CLI test: `epochs` epochs, no progress bar
    or model summary, and `--trainer.KEY VALUE` for each keyword (limit_train_batches=4, ...).

    The doctor's one-batch overfit and its end-of-fit diagnosis (a PNG) are off, and so is the test of the best
    checkpoint that the shipped configs run after fit (reloading it and drawing the task's report): they cost more
    than a tiny fit. Tests of them switch them back on with a flag (`--doctor.overfit_steps 8`, `--doctor.diagnose
    true`, `--test_after_fit true`)."""
    return [
        "--config", str(config), *DOCTOR_OFF, "--test_after_fit", "false", *map(str, flags),
        "--trainer.max_epochs", str(epochs),
        *[arg for key, value in trainer.items() for arg in (f"--trainer.{key}", str(value))],
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]


# A few-second version of the digits experiment: timm's tiny test_resnet on 16 px images, a few batches.
TINY_DIGITS = tiny_argv(DIGITS_CONFIG, "--model.init_args.backbone", "test_resnet", "--data.init_args.image_size", "16",
                        limit_train_batches=4, limit_val_batches=2, limit_test_batches=2, log_every_n_steps=2)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a SLURM cluster (munge and /tmp/trainkit-slurm.lock are machine-wide) run one at a time, on
    one worker of `pytest -n N --dist loadgroup`. Network namespaces alone need no group: each test's namespaces,
    veth pair and /etc/netns files are named by its process id, and its addresses and ports live inside them."""
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("cluster"))


def _threads_per_test_process() -> int:
    """2 threads, or this machine's cores shared among the xdist workers: more threads than cores make OpenMP's
    spinning threads wait on each other (a 2-core run with 2 workers of 2 threads each ran about 3x slower)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // workers))


THREADS = _threads_per_test_process()
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))  # the processes tests start inherit it


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the child processes it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_CPU_START = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU_START] = _cpu_seconds()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Each test's CPU seconds (setup to teardown, the processes it waited for included: not the DDP ranks that a
    forked rank 0 started) ride on its teardown report, so that xdist workers hand them to the summary below: on a
    shared machine wall time says little, CPU time is the cost."""
    report = yield
    if call.when == "teardown" and _CPU_START in item.stash:
        report.user_properties.append(("cpu_s", _cpu_seconds() - item.stash[_CPU_START]))
    return report


_CPU_SPENT: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "cpu_s" and report.when == "teardown":
            _CPU_SPENT[report.nodeid] = value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The suite's CPU seconds in all and its 25 costliest tests (like --durations, in CPU time, children included)."""
    if _CPU_SPENT:
        total = sum(_CPU_SPENT.values())
        terminalreporter.write_sep("=", f"CPU time: {total:.0f} s in {len(_CPU_SPENT)} tests; the 25 costliest")
        for nodeid, seconds in sorted(_CPU_SPENT.items(), key=lambda kv: -kv[1])[:25]:
            terminalreporter.write_line(f"{seconds:7.1f}s cpu  {nodeid}")


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    seed_everything(0, verbose=False)
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _rank_zero_again() -> None:
    """Each test starts as rank 0: a Trainer built in-process for another rank (a `NODE_RANK=1` fit) sets Lightning's
    process-wide `rank_zero_only.rank`, and every later test on that worker would then log, warn and write nothing."""
    rank_zero_only.rank = 0


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a private folder so `runs/` and `data/` never touch the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_trainkit(*args: str | Path) -> int:
    """Call `trainkit ARGS...` in-process; returns the exit code (0 when it returned normally)."""
    from trainkit.console import main

    try:
        main([str(a) for a in args])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.fixture
def trainkit(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """`run_trainkit` as a fixture: call `trainkit ARGS...` in-process, get the exit code."""
    return run_trainkit

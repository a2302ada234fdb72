"""A study on disk: `study.yaml` (what is searched and how), Optuna's journal file, and the locks that let any number
of runner processes (threads here, SLURM array tasks there) share it without a database server."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trainkit.errors import ConfigError
from trainkit.tune.space import SearchSpace

JOURNAL = "journal.log"
SETTINGS = "study.yaml"
LOCKS = ".locks"


@dataclass
class StudySettings:
    """What a study searches and how; written once to `study.yaml`, read by every runner and trial process."""

    name: str
    space: dict[str, dict[str, Any]]
    monitor: str
    mode: Literal["min", "max"]
    n_trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    startup_trials: int = 5
    warmup_validations: int | None = None
    """None: the first quarter of each trial's validations (the trial works it out from its own length)."""
    fit_args: list[str] = field(default_factory=list)
    experiment: str = "default"
    runs_dir: str = "runs"

    @property
    def direction(self) -> str:
        """Optuna's name for the mode."""
        return "maximize" if self.mode == "max" else "minimize"

    def search_space(self) -> SearchSpace:
        """The typed search space."""
        return SearchSpace.from_dict(self.space)


def study_dir(runs_dir: str | Path, experiment: str, name: str) -> Path:
    """`RUNS_DIR/EXPERIMENT/NAME`: the study's journal, settings, results and one run folder per trial."""
    return Path(runs_dir) / experiment / name


def read_settings(folder: Path) -> StudySettings:
    """The settings of the study in `folder`; a ConfigError when it is not a study folder."""
    path = folder / SETTINGS
    if not path.is_file():
        raise ConfigError(f"{folder} is not a study folder (no {SETTINGS}); pass a runs/<experiment>/<study> "
                          "folder written by `trainkit tune`")
    return StudySettings(**yaml.safe_load(path.read_text()))


def write_settings(folder: Path, settings: StudySettings) -> None:
    """Create or continue the study in `folder`: a rerun must search the same space for the same objective. Under
    the study lock: the tasks of an array job start together and each writes the settings."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS
    with study_lock(folder):
        if path.is_file():
            old = read_settings(folder)
            fixed = ("space", "monitor", "mode", "sampler", "pruner")
            changed = [key for key in fixed if getattr(old, key) != getattr(settings, key)]
            if changed and finished_trials(folder, old):
                raise ConfigError(f"study '{settings.name}' in {folder} was started with another "
                                  f"{' and '.join(changed)}; rerun with the same settings to continue it, or pass "
                                  "--study NEW for a new study")
        tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
        tmp.write_text(yaml.safe_dump(asdict(settings), sort_keys=False))
        os.replace(tmp, path)


def storage(folder: Path) -> Any:
    """Optuna's journal storage on `folder/journal.log` (file locks that work on NFS; no server), repaired first."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    repair_journal(folder / JOURNAL)
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def repair_journal(path: Path) -> None:
    """Cut a torn record out of the journal, under Optuna's own lock; Optuna neither detects nor repairs one
    (issue #5138): a writer lost mid-line leaves half a record, the next append lands on it and every later read
    fails. The cut bytes are kept beside the journal as `journal.log.torn-<time>`."""
    if not path.is_file() or not _torn_lines(path.read_bytes()):
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()  # again: another runner may have repaired it meanwhile
        torn = _torn_lines(data)
        if not torn:
            return
        kept, cut = [], []
        for index, line in enumerate(data.splitlines(keepends=True)):
            if index not in torn:
                kept.append(line)
                continue
            start = _record_start(line)
            kept += [line[start:]] if start is not None else []
            cut.append(line[:start])
        (path.parent / f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}").write_bytes(b"".join(cut))
        tmp = path.with_name(path.name + ".repair")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    finally:
        lock.release()
    print(f"trainkit tune: warning: {path} had a torn line ({sum(map(len, cut))} bytes of a write cut short); "
          "cut it out and kept it beside the journal", file=sys.stderr, flush=True)


def _torn_lines(data: bytes) -> set[int]:
    """Indexes of the lines that are not one whole JSON record ending in a newline."""
    torn = set()
    for index, line in enumerate(data.splitlines(keepends=True)):
        if not line.endswith(b"\n") or _record_start(line) != 0:
            torn.add(index)
    return torn


def _record_start(line: bytes) -> int | None:
    """Where the whole JSON record at the end of `line` starts (0 for an intact line), or None when there is none:
    a record appended onto a torn one is kept, the torn part before it is cut."""
    if not line.endswith(b"\n"):
        return None
    start = 0
    while start != -1:
        with contextlib.suppress(ValueError):
            if isinstance(json.loads(line[start:]), dict):
                return start
        start = line.find(b"{", start + 1)
    return None


def make_sampler(settings: StudySettings, seed: int) -> Any:
    """The sampler for one `ask`; seeded per trial so that parallel runners never draw the same point."""
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(settings.search_space().grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials)


def make_pruner(settings: StudySettings) -> Any:
    """The pruner; its steps are validations (1, 2, ...), so trials with different batch sizes still compare, or percent
    of each trial's run when the search changes run lengths (`trial.report_steps`)."""
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                           n_warmup_steps=settings.warmup_validations or 0)  # None: the trial waits
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, settings.warmup_validations or 1))
    return optuna.pruners.NopPruner()


def load(folder: Path, settings: StudySettings, seed: int | None = None) -> Any:
    """The Optuna study in `folder`, created on first use."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=settings.name, storage=storage(folder), direction=settings.direction, load_if_exists=True,
        sampler=make_sampler(settings, settings.seed if seed is None else seed), pruner=make_pruner(settings),
    )


def finished_trials(folder: Path, settings: StudySettings) -> int:
    """Trials that completed or were pruned."""
    from optuna.trial import TrialState

    if not (folder / JOURNAL).is_file():
        return 0
    trials = load(folder, settings).get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return len(trials)


def enqueue_baseline(folder: Path, settings: StudySettings, values: dict[str, Any]) -> None:
    """Queue the config's own values as trial 0 of a new study (a study that has trials is left as it is)."""
    with study_lock(folder):
        study = load(folder, settings)
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(values, user_attrs={"baseline": True})


@contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """Held while a runner counts trials and claims one, so that no two runners start trial N+1."""
    (folder / LOCKS).mkdir(parents=True, exist_ok=True)
    with (folder / LOCKS / "study.lock").open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def try_trial_lock(folder: Path, number: int) -> int | None:
    """An fd holding trial `number`'s lock, or None when a live process holds it. The kernel drops the lock when
    its holder dies (SIGKILL, a lost node), which is how a runner tells a dead trial from a running one."""
    (folder / LOCKS).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCKS / f"trial_{number}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd

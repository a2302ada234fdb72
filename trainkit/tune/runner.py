"""The runner: claim trials of a study one at a time and run each as a `trainkit fit` process, J at once.

Any number of runners may share a study (`--n_jobs` threads here, the tasks of a SLURM array there): a study lock
serialises "count the trials and start the next", and each running trial holds its own lock for as long as its
runner lives. A RUNNING trial whose lock is free lost its process (SIGKILL, preemption, a lost node): the next
runner resumes it in the same folder from its last checkpoint, so a study never runs a trial twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError
from trainkit.tune import study as studies
from trainkit.tune.space import as_flags
from trainkit.tune.trial import FATAL, PARENT_ENV, PRUNED_AT, VALUE, reporter_flags

MAX_FAILURES = 3
"""Trials that may fail before any finishes until the study stops: by then the fault is the config, not a value."""


@dataclass
class Claim:
    """A trial this runner will run: its number, its sampled values and the fd of its lock."""

    number: int
    params: dict[str, Any]
    lock: int
    resumed: bool


class Runner:
    """Run trials of the study in `folder` until it holds `settings.n_trials` of them."""

    def __init__(self, folder: Path, settings: studies.StudySettings, n_jobs: int = 1,
                 timeout: float | None = None) -> None:
        self.folder, self.settings, self.n_jobs = folder, settings, n_jobs
        self.deadline = time.monotonic() + timeout if timeout else None
        self.space = settings.search_space()
        self.stop = threading.Event()
        self.fatal: str | None = None
        self.processes: set[subprocess.Popen] = set()
        self._guard = threading.Lock()

    def run(self) -> None:
        """Run until the study is full, the timeout passes or a trial hits an error that every trial would hit."""
        threads = [threading.Thread(target=self._work, name=f"tune-{i}", daemon=True) for i in range(self.n_jobs)]
        previous = _install({signal.SIGTERM: self._on_signal, signal.SIGUSR1: self._on_signal})
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except KeyboardInterrupt:
            self.stop.set()  # the trials got the same SIGINT; wait so that each is left resumable
            for thread in threads:
                thread.join()
            raise
        finally:
            _install(previous)
        if self.fatal:
            raise ConfigError(self.fatal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM (a cancel, a requeue): stop claiming and pass it on; the trials save a checkpoint and exit.
        SIGUSR1 (SLURM's warning) reaches the trials by itself; the runner only stops claiming."""
        self.stop.set()
        if signum == signal.SIGTERM:
            with self._guard:
                for process in self.processes:
                    process.send_signal(signal.SIGTERM)

    def _work(self) -> None:
        while not self.stop.is_set():
            claim = self._claim()
            if claim is None:
                return
            try:
                self._run(claim)
            finally:
                os.close(claim.lock)

    def _claim(self) -> Claim | None:
        """Under the study lock: resume a trial whose process died, else start a new one while there is room."""
        from optuna.trial import TrialState

        with studies.study_lock(self.folder):
            study = studies.load(self.folder, self.settings)
            trials = study.get_trials(deepcopy=False)
            for trial in trials:
                if trial.state != TrialState.RUNNING:
                    continue
                lock = studies.try_trial_lock(self.folder, trial.number)
                if lock is None:
                    continue  # a live runner holds it
                if FATAL in trial.user_attrs:
                    study.tell(trial.number, state=TrialState.FAIL)
                    os.close(lock)
                    continue
                if VALUE in trial.user_attrs or PRUNED_AT in trial.user_attrs:
                    self._tell(study, trial.number, trial.user_attrs)  # it finished; only its runner is gone
                    os.close(lock)
                    continue
                return Claim(trial.number, trial.params, lock, resumed=True)
            counted = [t for t in trials if not (t.state == TrialState.FAIL and FATAL in t.user_attrs)]
            if self.stop.is_set() or len(counted) >= self.settings.n_trials or self._timed_out():
                return None
            study = studies.load(self.folder, self.settings, seed=self.settings.seed * 10_000 + len(trials))
            trial = study.ask(self.space.distributions())
            lock = studies.try_trial_lock(self.folder, trial.number)
            if lock is None:  # cannot happen while the study lock is held; never run a trial without its lock
                raise RuntimeError(f"trial {trial.number} is locked by another process")
            trial.set_user_attr("runner", _runner_name())
            return Claim(trial.number, trial.params, lock, resumed=False)

    def _timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _run(self, claim: Claim) -> None:
        run_dir = self.folder / f"trial_{claim.number}"
        run_dir.mkdir(parents=True, exist_ok=True)
        what = "resuming" if claim.resumed else "starting"
        values = ", ".join(f"{key.rsplit('.', 1)[-1]}={value:.4g}" if isinstance(value, float) else
                           f"{key.rsplit('.', 1)[-1]}={value}" for key, value in claim.params.items())
        print(f"trainkit tune: {what} trial {claim.number} ({values}) in {run_dir}", flush=True)
        command = [sys.executable, "-m", "trainkit", "fit", *trial_args(self.settings, claim.number, claim.params),
                   *reporter_flags(self.folder, claim.number)]
        with (run_dir / "trial.log").open("a") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                       pass_fds=(claim.lock,))  # the trial holds its lock too, should we vanish
            with self._guard:
                self.processes.add(process)
            code = process.wait()
            with self._guard:
                self.processes.discard(process)
        self._finish(claim.number, code, run_dir)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # J trials on C cores: C/J threads each, not C each (oversubscribed threads run several times slower).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.n_jobs)))
        return env | {PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}

    def _finish(self, number: int, code: int, run_dir: Path) -> None:
        from optuna.trial import TrialState

        study = studies.load(self.folder, self.settings)
        trial = study.get_trials(deepcopy=False)[number]
        attrs = trial.user_attrs
        if FATAL in attrs:
            study.tell(number, state=TrialState.FAIL)
            self.fatal = f"trial {number} ({run_dir}): {attrs[FATAL]}"
            self.stop.set()
        elif code == 0 and (VALUE in attrs or PRUNED_AT in attrs):
            state = self._tell(study, number, attrs)
            value = f" {self.settings.monitor}={attrs[VALUE]:.6g}" if state == "complete" else ""
            print(f"trainkit tune: trial {number} {state}{value}", flush=True)
        elif self.stop.is_set() or code == 0:
            # Interrupted or preempted (saved and exited): left RUNNING, so the next runner resumes it.
            print(f"trainkit tune: trial {number} interrupted; rerun the same command to resume it", flush=True)
            self.stop.set()
        else:
            study.tell(number, state=TrialState.FAIL)
            reason = _last_error(run_dir / "trial.log") or f"exit code {code}"
            print(f"trainkit tune: trial {number} failed: {reason} (log: {run_dir / 'trial.log'})", flush=True)
            trials = study.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            failed = [t for t in trials if t.state == TrialState.FAIL]
            if not finished and len(failed) >= MAX_FAILURES:
                self.fatal = (f"the first {len(failed)} trials all failed, the last with: {reason}; fix the config "
                              f"or the search space (logs: {self.folder}/trial_*/trial.log)")
                self.stop.set()

    def _tell(self, study: Any, number: int, attrs: dict[str, Any]) -> str:
        from optuna.trial import TrialState

        if PRUNED_AT in attrs:
            return study.tell(number, state=TrialState.PRUNED).state.name.lower()
        return study.tell(number, attrs[VALUE]).state.name.lower()  # a NaN value makes it FAIL


def trial_args(settings: studies.StudySettings, number: int, params: dict[str, Any]) -> list[str]:
    """The `trainkit fit` flags of trial `number`: the study's fit flags, its values, its own folder, and resume."""
    return [*settings.fit_args, *as_flags(params), "--runs_dir", str(Path(settings.runs_dir) / settings.experiment),
            "--experiment", f"tune_{settings.name}", "--run_name", f"trial_{number}", "--ckpt_path", "auto"]


def _runner_name() -> str:
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    host = os.uname().nodename
    return f"slurm task {task} on {host}" if task is not None else f"pid {os.getpid()} on {host}"


def _last_error(log: Path) -> str | None:
    """The one-line error a failed trial printed, if any."""
    if not log.is_file():
        return None
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix("trainkit: error: ") for line in lines if line.startswith("trainkit: error:")]
    return errors[-1] if errors else (lines[-1][-300:] if lines else None)


def _install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install signal handlers (only the main thread may); returns the ones they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

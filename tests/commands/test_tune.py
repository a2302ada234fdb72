"""`trainkit tune` end to end: real trial processes on tiny digits runs, pruning, best.yaml, a SIGKILLed study
continued, and the bad inputs that must fail before (or at) the first trial."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.hpc._runs import ForkedRun, kill_tree
from tests.tune._tiny import TRIAL_ARGS, journal_trials, monitored, read_trials, trial_env, write_space  # noqa: F401
from trainkit.tune.study import try_trial_lock

STUDY = Path("runs/digits/tune_tiny")


def test_four_trials_two_at_once_prune_and_best_yaml_reproduces_the_best(
    workdir: Path, trainkit, trial_env, capsys  # noqa: ANN001, F811
) -> None:
    search = write_space(workdir)
    code = trainkit("tune", *TRIAL_ARGS, "--search", search, "--n_trials", "4", "--n_jobs", "2",
                    "--sampler", "random", "--seed", "20", "--startup_trials", "2",
                    "--warmup_validations", "0")  # two-validation trials: judged at the first, to see pruning work
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    study = workdir / STUDY
    rows = read_trials(study)
    assert [int(r["number"]) for r in rows] == list(range(4))
    states = [r["state"] for r in rows]
    assert set(states) <= {"complete", "pruned"} and "pruned" in states, states
    assert "4/4 trials" in out and "pruned at val 1" in out  # the table printed at the end
    for row in rows:  # every trial, pruned or not, is a run folder like any other
        run = Path(row["run_folder"])
        assert run == STUDY / f"trial_{row['number']}"
        assert {"config.yaml", "metrics.csv", "checkpoints", "trial.log"} <= {p.name for p in (workdir / run).iterdir()}
        assert len(monitored(workdir / run)) == (1 if row["state"] == "pruned" else 2)
    for plot in ("history", "importances", "slice"):
        assert (study / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"

    # The journal agrees: each pruned trial stopped at its first validation; each draw is its own.
    trials = journal_trials(study, "tune_tiny")
    assert len({t.params["model.init_args.optimizer.lr"] for t in trials}) == 4
    assert all(list(t.intermediate_values) == [1] for t in trials if t.state.name == "PRUNED")

    # best.yaml is the best trial's config, logging to the base experiment: rerun it, get the same value exactly.
    done = [r for r in rows if r["state"] == "complete"]
    best = min(done, key=lambda r: float(r["value"]))
    config = yaml.safe_load((study / "best.yaml").read_text())
    assert config["experiment"] == "digits" and config["run_name"] is None
    assert config["model"]["init_args"]["optimizer"]["lr"] == float(best["model.init_args.optimizer.lr"])
    torch.set_num_threads(1)  # as in the trial processes (trial_env), so the float sums come out the same
    assert trainkit("fit", "--config", study / "best.yaml") == 0, capsys.readouterr().err[-3000:]
    assert min(monitored(workdir / "runs/digits/version_0")) == float(best["value"])

    assert trainkit("tune", "--show", study) == 0
    shown = capsys.readouterr().out
    assert "study 'tune_tiny', 4/4 trials" in shown and f"best: trial {best['number']}," in shown


def _tune(search: Path) -> list[str]:
    return ["tune", *TRIAL_ARGS, "--trainer.max_epochs", "3", "--search", str(search), "--n_trials", "2", "--pruner",
            "none", "--sampler", "random"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for_free_lock(study: Path, number: int, seconds: float = 60) -> None:
    """Until no process holds trial `number`'s lock (the runner's own test: `try_trial_lock`)."""
    deadline = time.monotonic() + seconds
    while (fd := try_trial_lock(study, number)) is None:
        assert time.monotonic() < deadline, f"trial {number}'s lock is still held {seconds:.0f} s after its runner died"
        time.sleep(0.1)
    os.close(fd)


def _run_logged(args: list[str], workdir: Path, study: Path, timeout: float) -> str:
    """Run a runner to its end and return its output; if it fails or outlives `timeout`, fail with its output, each
    trial's log and the processes still running, so that a hang on a CI machine can be read from the report."""
    process = ForkedRun(*args, cwd=workdir)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        processes = subprocess.run(["ps", "-eo", "pid,ppid,stat,etime,args"], capture_output=True, text=True)
        kill_tree(process)
    output = process.log_path.read_text()
    if code != 0:
        trials = "\n".join(f"--- {p}:\n{p.read_text()[-1500:]}" for p in sorted(study.glob("trial_*/trial.log")))
        ps = processes.stdout if code is None else ""
        pytest.fail(f"runner {'hung' if code is None else f'exit {code}'}:\n{output[-3000:]}\n{trials}\n{ps[-3000:]}")
    return output


@pytest.mark.slow
def test_a_sigkilled_study_continues_to_exactly_n_trials_resuming_the_killed_one(
    workdir: Path, trial_env  # noqa: F811
) -> None:
    search = write_space(workdir)
    study = workdir / STUDY
    # The runners are forks of this process (a fresh interpreter is ~7 s of CPU); their trials are processes.
    first = ForkedRun(*_tune(search), cwd=workdir)
    killed_in = study / "trial_1" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 500
    while not killed_in.exists():  # trial 1 is one epoch in (of three): kill the whole study now
        assert first.poll() is None, first.log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "trial 1 never wrote a checkpoint"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    kept = {p: _digest(p) for p in (study / "trial_0" / "checkpoints").iterdir()}
    assert kept, "trial 0 finished before the kill"
    _wait_for_free_lock(study, 1)  # the trial died with its runner (PR_SET_PDEATHSIG)

    second = _run_logged(_tune(search), workdir, study, timeout=600)
    assert "resuming trial 1" in second and "starting trial 2" not in second  # two trials: the study is full
    assert "starting trial 0" not in second and "resuming trial 0" not in second  # finished: kept
    trials = journal_trials(study, "tune_tiny")
    assert [t.number for t in trials] == [0, 1]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials)
    assert {p: _digest(p) for p in kept} == kept  # finished work untouched
    assert sorted(p.name for p in study.iterdir() if p.name.startswith("trial_")) == ["trial_0", "trial_1"]
    assert "Restored all states from the checkpoint" in (study / "trial_1" / "trial.log").read_text()
    assert len(read_trials(study)) == 2


@pytest.mark.parametrize(("space", "message"), [
    ("model.init_args.optimzer.lr: {type: float, low: 1.0e-4, high: 1.0e-1}",
     "model.init_args.optimzer.lr is not a key of the config"),
    ("model.init_args.optimizer.lr: {type: float, low: 1.0e-1, high: 1.0e-4}", "low 0.1 > high 0.0001; swap them"),
    ("model.init_args.optimizer.lr: {type: float, low: 0.0, high: 1.0e-1, log: true}", "log: true needs low > 0"),
    ("model.init_args.optimizer.name: {type: categorical, choices: []}", "choices must be a non-empty list"),
])
def test_a_bad_search_file_fails_in_one_line_before_any_trial(
    workdir: Path, trainkit, capsys, space: str, message: str  # noqa: ANN001
) -> None:
    search = write_space(workdir, space + "\n")
    assert trainkit("tune", *TRIAL_ARGS, "--search", search, "--n_trials", "2") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"trainkit: error: search file {search}: ") and message in error, error
    assert "\n" not in error
    assert not (workdir / STUDY).exists()


def test_a_monitor_the_runs_never_log_stops_the_study_at_the_first_trial(
    workdir: Path, trainkit, trial_env, capsys  # noqa: ANN001, F811
) -> None:
    search = write_space(workdir)
    assert trainkit("tune", *TRIAL_ARGS, "--monitor", "val/accuracy", "--search", search, "--n_trials", "4") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("trainkit: error: trial 0 (") and "--monitor val/accuracy is never logged" in error
    assert "val/acc" in error  # what the runs do log, to pick from
    assert [t.state.name for t in journal_trials(workdir / STUDY, "tune_tiny")] == ["FAIL"]  # not after all four


def test_slurm_renders_one_array_job_of_runners_without_submitting(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    search = write_space(workdir)
    assert trainkit("tune", *TRIAL_ARGS, "--search", search, "--n_trials", "8", "--n_jobs", "3", "--slurm",
                    "--time", "02:00:00", "--partition", "cpu") == 0
    script = capsys.readouterr().out
    assert "#SBATCH --array=0-2" in script and "#SBATCH --partition=cpu" in script
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    assert " -m trainkit tune " in srun and "--n_jobs 1" in srun and "--study tune_tiny" in srun
    assert "--slurm" not in srun and "--partition" not in srun and "--n_jobs 3" not in srun
    assert srun.endswith("--ckpt_path auto")  # a requeued task resumes its trial
    assert len(list((workdir / STUDY).glob("sbatch_*.sh"))) == 1
    assert [t.state.name for t in journal_trials(workdir / STUDY, "tune_tiny")] == ["WAITING"]  # the baseline, queued


@pytest.mark.parametrize("study", ["../../../../x", "../victim", "a/b", "/tmp/abs"])
def test_a_study_name_that_leaves_the_experiment_folder_is_refused(
    workdir: Path, trainkit, capsys, study: str  # noqa: ANN001
) -> None:
    search = write_space(workdir)
    (workdir / "R").mkdir()
    assert trainkit("tune", *TRIAL_ARGS, "--runs_dir", "R", "--search", search, "--study", study) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"trainkit: error: --study {study!r} would put the study outside") and "\n" not in error
    assert sorted(p.name for p in workdir.iterdir()) == ["R", "tiny.yaml"] and not any((workdir / "R").iterdir())


def test_an_experiment_folder_linked_outside_the_runs_folder_is_refused(
    workdir: Path, trainkit, capsys  # noqa: ANN001
) -> None:
    search = write_space(workdir)
    (workdir / "R").mkdir()
    (workdir / "victim").mkdir()
    (workdir / "R" / "digits").symlink_to(workdir / "victim")
    assert trainkit("tune", *TRIAL_ARGS, "--runs_dir", "R", "--search", search) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("trainkit: error: experiment folder R/digits is a link to") and "outside" in error
    assert not any((workdir / "victim").iterdir())

"""`trainkit tune --slurm --submit` on a real one-node SLURM cluster: one array job of two tasks, each a runner on
the same journal file, pulls trials until the study holds all of them."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.hpc._slurm import local_slurm
from tests.tune._tiny import TRIAL_ARGS, journal_trials, read_trials, trial_env, write_space  # noqa: F401


@pytest.mark.slow
@pytest.mark.slurm
def test_a_two_task_array_job_shares_the_journal_and_finishes_every_trial(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory, trial_env, trainkit, capsys, monkeypatch  # noqa: ANN001, F811
) -> None:
    search = write_space(workdir)
    with local_slurm(tmp_path_factory.mktemp("slurm")) as slurm_env:
        # Submitted in-process (a fresh interpreter is ~7 s of CPU); sbatch hands the tasks this environment.
        monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
        code = trainkit("tune", *TRIAL_ARGS, "--search", str(search), "--n_trials", "4", "--n_jobs", "2",
                        "--pruner", "none", "--slurm", "--time", "00:20:00", "--submit")
        out, err = capsys.readouterr()
        assert code == 0, out[-2000:] + err[-2000:]
        assert "#SBATCH --array=0-1" in out
        job = re.search(r"submitted array job (\d+)", out).group(1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 900
        while subprocess.run(["squeue", "-h", "-r", "-j", job], env=slurm_env, capture_output=True, text=True,
                             check=False).stdout.strip():
            assert time.monotonic() < deadline, "the array job did not finish in 15 minutes"
            time.sleep(1)

    study = workdir / "runs/digits/tune_tiny"
    logs = sorted(study.glob("slurm_*.log"))
    trials = journal_trials(study, "tune_tiny")
    assert [t.number for t in trials] == [0, 1, 2, 3], "\n".join(log.read_text()[-1500:] for log in logs)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    runners = {t.user_attrs["runner"].split(" on ")[0] for t in trials}
    assert runners == {"slurm task 0", "slurm task 1"}, "\n".join(log.read_text()[-1500:] for log in logs)
    assert len(logs) == 2 and len(read_trials(study)) == 4

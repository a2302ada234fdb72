"""The sbatch script `trainkit slurm` renders, and the command's handling of flags (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit.hpc.sbatch import SlurmJob, render_sbatch, split_job_flags

from ._runs import DIGITS_CONFIG


def test_sbatch_script_has_one_task_per_device_the_warning_signal_requeue_and_auto_resume(tmp_path: Path) -> None:
    job_args, fit_args, submit = split_job_flags(["--config", "x.yaml", "--nodes", "2", "--gpus-per-node=4", "--time",
                                         "02:00:00", "--partition", "gpu", "--trainer.max_epochs", "3", "--submit"])
    assert submit and fit_args == ["--config", "x.yaml", "--trainer.max_epochs", "3"]
    job = SlurmJob(nodes=2, gpus_per_node=4, time="02:00:00", partition="gpu")
    assert job_args == ["--nodes", "2", "--gpus_per_node", "4", "--time", "02:00:00", "--partition", "gpu"]
    script = render_sbatch(job, fit_args, "digits", tmp_path / "runs" / "digits", tmp_path)
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue", "#SBATCH --time=02:00:00",
                 "#SBATCH --partition=gpu", f"#SBATCH --output={tmp_path}/runs/digits/slurm_%j.log"):
        assert line in script.splitlines()
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    assert srun.endswith("--trainer.accelerator gpu --trainer.devices 4 --trainer.num_nodes 2 --ckpt_path auto")
    assert "--account" not in script
    cpu = render_sbatch(SlurmJob(), fit_args, "digits", tmp_path, tmp_path)
    assert "#SBATCH --ntasks-per-node=1" in cpu and "--gpus-per-node" not in cpu and "accelerator cpu" in cpu


def test_slurm_command_writes_the_script_next_to_the_runs_and_rejects_flags_it_owns(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    assert trainkit("slurm", "--config", DIGITS_CONFIG, "--trainer.max_epochs", "2", "--time", "00:30:00") == 0
    scripts = list((workdir / "runs" / "digits").glob("sbatch_*.sh"))
    assert len(scripts) == 1
    text = scripts[0].read_text()
    assert "#SBATCH --time=00:30:00" in text and "--trainer.max_epochs 2" in text
    assert text in capsys.readouterr().out  # printed as well

    assert trainkit("slurm", "--config", DIGITS_CONFIG, "--trainer.devices", "2") == 2
    assert "use --tasks_per_node/--gpus_per_node/--nodes" in capsys.readouterr().err
    assert trainkit("slurm", "--config", DIGITS_CONFIG, "--trainer.max_epocs", "2") == 2  # checked before queueing
    assert "max_epocs" in capsys.readouterr().err

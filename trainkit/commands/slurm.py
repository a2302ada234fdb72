"""`trainkit slurm`: render (and with --submit, submit) the sbatch script of a `trainkit fit` run."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path

from jsonargparse import ArgumentParser

from trainkit.errors import ConfigError
from trainkit.hpc.sbatch import SlurmJob, render_sbatch

USAGE = (
    "trainkit slurm --config X.yaml [trainkit fit flags] [--nodes N] [--gpus_per_node G] [--time HH:MM:SS] "
    "[--partition P] [--account A] [--submit]"
)


def main(argv: list[str]) -> None:
    """Write the sbatch script of `trainkit fit ARGS` next to the experiment's runs, print it, and maybe submit it."""
    job_args, fit_args, submit = _split(argv)
    if "-h" in fit_args or "--help" in fit_args:
        print(USAGE + "\n\nJob flags (all other flags go to `trainkit fit`):")
        _job_parser().print_help()
        return
    job = SlurmJob(**vars(_job_parser().parse_args(job_args)))
    if any(arg in ("--ckpt_path", "--trainer.devices", "--trainer.num_nodes") or arg.startswith(
            ("--ckpt_path=", "--trainer.devices=", "--trainer.num_nodes=")) for arg in fit_args):
        raise ConfigError("trainkit slurm sets --ckpt_path auto, --trainer.devices and --trainer.num_nodes itself; "
                          "drop them and use --tasks_per_node/--gpus_per_node/--nodes")
    config = _parse_fit(fit_args)
    log_dir = Path(config.runs_dir) / config.experiment
    log_dir.mkdir(parents=True, exist_ok=True)
    script = render_sbatch(job, fit_args, config.experiment, log_dir, Path.cwd())
    path = log_dir / f"sbatch_{datetime.now().strftime('%Y%m%d-%H%M%S')}.sh"
    path.write_text(script)
    print(script)
    print(f"trainkit: sbatch script written to {path}")
    if submit:
        job_id = _submit(path)
        print(f"trainkit: submitted job {job_id}; its run folder is {log_dir / f'slurm_{job_id}'}, "
              f"its log {log_dir / f'slurm_{job_id}.log'}")


def _job_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="trainkit slurm", exit_on_error=False)
    parser.add_class_arguments(SlurmJob, as_group=False)
    return parser


def _split(argv: list[str]) -> tuple[list[str], list[str], bool]:
    """Separate the job's flags (--nodes, --gpus-per-node or --gpus_per_node, ...) from those of `trainkit fit`."""
    names = {field.name for field in dataclasses.fields(SlurmJob)}
    job_args: list[str] = []
    fit_args: list[str] = []
    submit = False
    args = iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        name = flag.removeprefix("--").replace("-", "_")
        if flag == "--submit":
            submit = True
        elif flag.startswith("--") and name in names:
            job_args += [f"--{name}", value if has_value else next(args, "")]
        else:
            fit_args.append(arg)
    return job_args, fit_args, submit


def _parse_fit(fit_args: list[str]):  # noqa: ANN202  (a jsonargparse Namespace)
    """Check the fit flags now, not after hours in the queue: parse them as `trainkit fit` would, building nothing."""
    from trainkit.cli import TrainkitCLI

    class _ParseOnly(TrainkitCLI):
        def instantiate_classes(self) -> None:
            pass

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")  # we pass our own argv on purpose
        return _ParseOnly(args=fit_args, run=False).config


def _submit(script: Path) -> str:
    if shutil.which("sbatch") is None:
        raise ConfigError("sbatch is not installed here; run on a SLURM login node, or drop --submit and copy the "
                          "script there")
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
        raise ConfigError(f"sbatch refused {script}: {message}")
    return done.stdout.strip().split(";")[0]


if __name__ == "__main__":
    main(sys.argv[1:])

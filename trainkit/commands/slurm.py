"""`trainkit slurm`: render (and with --submit, submit) the sbatch script of a `trainkit fit` run."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from trainkit.errors import ConfigError
from trainkit.hpc.sbatch import SlurmJob, job_parser, render_sbatch, split_job_flags, submit

USAGE = (
    "trainkit slurm --config X.yaml [trainkit fit flags] [--nodes N] [--gpus_per_node G] [--time HH:MM:SS] "
    "[--partition P] [--account A] [--submit]"
)


def main(argv: list[str]) -> None:
    """Write the sbatch script of `trainkit fit ARGS` next to the experiment's runs, print it, and maybe submit it."""
    job_args, fit_args, submitting = split_job_flags(argv)
    if "-h" in fit_args or "--help" in fit_args:
        print(USAGE + "\n\nJob flags (all other flags go to `trainkit fit`):")
        job_parser().print_help()
        return
    job = SlurmJob(**vars(job_parser().parse_args(job_args)))
    if any(arg in ("--ckpt_path", "--trainer.devices", "--trainer.num_nodes") or arg.startswith(
            ("--ckpt_path=", "--trainer.devices=", "--trainer.num_nodes=")) for arg in fit_args):
        raise ConfigError("trainkit slurm sets --ckpt_path auto, --trainer.devices and --trainer.num_nodes itself; "
                          "drop them and use --tasks_per_node/--gpus_per_node/--nodes")
    from trainkit.cli import parse_only  # here: `trainkit slurm --help` stays quick

    config = parse_only(fit_args)
    log_dir = Path(config.runs_dir) / config.experiment
    log_dir.mkdir(parents=True, exist_ok=True)
    script = render_sbatch(job, fit_args, config.experiment, log_dir, Path.cwd())
    path = log_dir / f"sbatch_{datetime.now().strftime('%Y%m%d-%H%M%S')}.sh"
    path.write_text(script)
    print(script)
    print(f"trainkit: sbatch script written to {path}")
    if submitting:
        job_id = submit(path)
        print(f"trainkit: submitted job {job_id}; its run folder is {log_dir / f'slurm_{job_id}'}, "
              f"its log {log_dir / f'slurm_{job_id}.log'}")


if __name__ == "__main__":
    main(sys.argv[1:])

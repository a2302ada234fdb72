"""`trainkit check --config X.yaml [flags]`: the preflight checks of `fit`, plus one real training and validation
batch, in seconds and without writing a run; every problem is printed as one line with its fix."""

from __future__ import annotations

import sys
import tempfile

from trainkit.callbacks.doctor import Doctor
from trainkit.doctor.preflight import PreflightError

# A run of one batch each way, in a folder that is thrown away: the user's config decides everything else
# (model, data, precision, strategy, devices), so the check sees what `fit` would.
_ONE_BATCH = [
    "--trainer.fast_dev_run", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--test_after_fit", "false",
    "--doctor.preflight", "true",
    "--doctor.diagnose", "false",
]


def main(argv: list[str]) -> None:
    """Check an experiment before spending a cluster slot on it; exits 2 when a problem is found."""
    from trainkit.cli import TrainkitCLI

    if any(arg in ("-h", "--help") for arg in argv):
        print("usage: trainkit check --config X.yaml [any fit flag ...]\n\n" + (__doc__ or "").strip())
        return
    with tempfile.TemporaryDirectory(prefix="trainkit-check-") as scratch:
        try:
            # default_root_dir: a fast_dev_run has no run folder, so Lightning would put checkpoints/ in the cwd.
            cli = TrainkitCLI(args=[*argv, "--runs_dir", scratch, "--trainer.default_root_dir", scratch, *_ONE_BATCH],
                              run=False)
        except PreflightError as error:
            _fail(error.problems)
        doctor = next(c for c in cli.trainer.callbacks if isinstance(c, Doctor))
        doctor.collect = True
        try:
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        except PreflightError as error:  # a model/data mismatch: training on would end in a raw error
            _fail(error.problems)
    if doctor.problems:
        _fail(doctor.problems)
    print("trainkit check: ok (trainer settings, one-batch overfit, monitored metrics, one train and val batch)")


def _fail(problems: list[str]) -> None:
    for problem in problems:
        print(f"trainkit check: problem: {problem}", file=sys.stderr)
    sys.exit(2)

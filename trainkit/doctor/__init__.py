"""The training doctor: preflight checks before a run, and a diagnosis of its loss curves after it."""

from trainkit.doctor.cases import CASES, Case
from trainkit.doctor.curves import Curves, Series, load_curves, resolve_run_dir
from trainkit.doctor.diagnosis import Finding, diagnose
from trainkit.doctor.preflight import PreflightError, check_trainer_config, overfit_one_batch
from trainkit.doctor.report import Report, examine, table

__all__ = [
    "CASES", "Case", "Curves", "Finding", "PreflightError", "Report", "Series", "check_trainer_config", "diagnose",
    "examine", "load_curves", "overfit_one_batch", "resolve_run_dir", "table",
]

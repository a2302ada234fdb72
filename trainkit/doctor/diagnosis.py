"""Curve diagnosis: pure functions from a run's logged curves to named findings with causes and flags to try.

The cases themselves (detection, title, causes, flags) are records in `trainkit.doctor.cases`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainkit.doctor.advice import for_run
from trainkit.doctor.cases import CASES
from trainkit.doctor.curves import Curves
from trainkit.doctor.evidence import Evidence, Settings


@dataclass
class Finding:
    """One diagnosed problem: which case, where on the step axis, the numbers behind it and what to try."""

    case: str
    start: int
    end: int
    evidence: str
    causes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    stop_epoch: int | None = None
    """For overfitting: the epoch with the best validation loss."""

    @property
    def title(self) -> str:
        """The case's human name."""
        return CASES[self.case].title


def diagnose(curves: Curves) -> list[Finding]:
    """All findings for one run, the most severe first; an empty list means the run looks healthy."""
    evidence, settings = Evidence.of(curves), Settings.of(curves.config)
    findings: list[Finding] = []
    for case in CASES.values():
        if case.needs_trend and evidence.trend is None:
            continue
        if any(found.case in case.superseded_by for found in findings):
            continue
        hit = case.detect(evidence)
        if hit is not None:
            findings.append(Finding(case.name, hit.start, hit.end, hit.evidence, list(case.causes),
                                    for_run(case.flags(hit, settings), curves.config), hit.stop_epoch))
    return findings

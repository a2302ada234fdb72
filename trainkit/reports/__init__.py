"""Task reports (plots and tables written into a run's folder at test end) and run provenance.

Each task family names its writer (`TaskModule.report_writer`); matplotlib is imported only when a report is drawn.
"""

from trainkit.reports.base import REPORT_DIR, ReportWriter

__all__ = ["REPORT_DIR", "ReportWriter"]

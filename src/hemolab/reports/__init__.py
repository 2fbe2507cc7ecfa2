"""Reports of recorded experiments: one self-contained HTML file with interactive plotly
figures and their provenance, and print versions (PNG, PDF) drawn with matplotlib
(design note 029). Every report carries the label "research use — not for clinical
decisions"."""

from hemolab.reports._data import ReportError as ReportError
from hemolab.reports._print import LABEL as LABEL
from hemolab.reports._report import (
    Report as Report,
    check_outputs as check_outputs,
    make_report as make_report,
    save_report as save_report,
    write_report as write_report,
)

__all__ = [
    "LABEL",
    "Report",
    "ReportError",
    "check_outputs",
    "make_report",
    "save_report",
    "write_report",
]

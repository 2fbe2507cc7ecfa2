"""A calibrated patient's fit as the input of ``run --fit`` and ``search --fit``, audited.

A fit of a stored patient is that patient's data (its posterior, its observations); when the
command records into a store, the use goes on the store's audit trail (design note 028).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_patient_fit"]


def load_patient_fit(fit: Path, store: Path | None, action: str, draws: int) -> Any:
    """The fit in ``fit``; its use by ``action`` audited in ``store`` for a stored patient."""
    from hemolab.calibrate import load_fit

    record = load_fit(fit)
    if store is not None and not record.temporary_patient:
        from hemolab.audit import Actor, AuditLog

        AuditLog(store).append(
            Actor.cli(), action, record.patient, f"{draws} posterior draws of {fit.name}"
        )
    return record

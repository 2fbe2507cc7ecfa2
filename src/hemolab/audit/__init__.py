"""The audit trail: who read or changed which patient's data, when and from where.

An append-only log in the store, chained with an HMAC whose key and chain head are kept
apart from the store (design note 028).
"""

from hemolab.audit._log import (
    Actor as Actor,
    AuditError as AuditError,
    AuditLog as AuditLog,
    AuditVerification as AuditVerification,
    audit_key_dir as audit_key_dir,
)

__all__ = ["Actor", "AuditError", "AuditLog", "AuditVerification", "audit_key_dir"]

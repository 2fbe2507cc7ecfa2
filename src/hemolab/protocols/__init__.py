"""Treatment protocols: phases with doses and parameter settings, monitoring, and safety
limits checked at exact crossing times over a virtual population (design note 024)."""

from hemolab.protocols._patient import PatientNow, patient_now
from hemolab.protocols._protocol import (
    Dose,
    Limit,
    Monitoring,
    Phase,
    Protocol,
    ProtocolError,
    Rule,
)
from hemolab.protocols._read import ProtocolFile, protocol_model, read_protocol
from hemolab.protocols._run import (
    LimitOutcome,
    ProtocolResult,
    limit_tracking,
    rule_tracking,
    run_protocol,
)

__all__ = [
    "Dose",
    "Limit",
    "LimitOutcome",
    "Monitoring",
    "PatientNow",
    "Phase",
    "Protocol",
    "ProtocolError",
    "ProtocolFile",
    "ProtocolResult",
    "Rule",
    "limit_tracking",
    "patient_now",
    "protocol_model",
    "read_protocol",
    "rule_tracking",
    "run_protocol",
]

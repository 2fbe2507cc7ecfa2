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
    Transfusion,
)
from hemolab.protocols._read import ProtocolFile, protocol_model, read_protocol
from hemolab.protocols._rejection import BLOOD_GROUPS, US_BLOOD_GROUP_FREQUENCIES
from hemolab.protocols._run import (
    LimitOutcome,
    ProtocolResult,
    limit_tracking,
    rule_tracking,
    run_protocol,
)

__all__ = [
    "BLOOD_GROUPS",
    "US_BLOOD_GROUP_FREQUENCIES",
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
    "Transfusion",
    "limit_tracking",
    "patient_now",
    "protocol_model",
    "read_protocol",
    "rule_tracking",
    "run_protocol",
]

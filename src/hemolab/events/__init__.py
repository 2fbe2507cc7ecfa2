"""Event datasets (DATA-FORMATS §A) and their expansion into solver schedules.

:func:`read_events` reads and checks a NONMEM-style dataset against a model;
:func:`build_schedule` expands it into per-subject tables of primitive actions
(``OP_*`` codes) that the solver walks with a pointer. See
``docs/design/003-event-semantics.md``.
"""

from hemolab.events._dataset import (
    EventDataset as EventDataset,
    EventRecord as EventRecord,
    SubjectEvents as SubjectEvents,
    read_events as read_events,
)
from hemolab.events._ops import (
    OP_ADD as OP_ADD,
    OP_BOLUS as OP_BOLUS,
    OP_MULTIPLY as OP_MULTIPLY,
    OP_NAMES as OP_NAMES,
    OP_NOP as OP_NOP,
    OP_OUTPUT as OP_OUTPUT,
    OP_PARAM as OP_PARAM,
    OP_PHLEBOTOMY as OP_PHLEBOTOMY,
    OP_RATE as OP_RATE,
    OP_RATE_F as OP_RATE_F,
    OP_REPLACE as OP_REPLACE,
    OP_RESET as OP_RESET,
)
from hemolab.events._regimen import (
    Course as Course,
    Regimen as Regimen,
    RegimenError as RegimenError,
)
from hemolab.events._schedule import (
    DoseProperties as DoseProperties,
    Schedule as Schedule,
    build_schedule as build_schedule,
)
from hemolab.events._trigger import Trigger as Trigger

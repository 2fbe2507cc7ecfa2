"""Event datasets (DATA-FORMATS §A) and their expansion into solver schedules.

:func:`read_events` reads and checks a NONMEM-style dataset against a model;
:func:`build_schedule` expands it into per-subject tables of primitive actions
(``OP_*`` codes) that the solver walks with a pointer. See
``docs/design/003-event-semantics.md``.
"""

from hemolab.events._dataset import EventDataset as EventDataset
from hemolab.events._dataset import EventRecord as EventRecord
from hemolab.events._dataset import SubjectEvents as SubjectEvents
from hemolab.events._dataset import read_events as read_events
from hemolab.events._ops import OP_ADD as OP_ADD
from hemolab.events._ops import OP_BOLUS as OP_BOLUS
from hemolab.events._ops import OP_MULTIPLY as OP_MULTIPLY
from hemolab.events._ops import OP_NAMES as OP_NAMES
from hemolab.events._ops import OP_NOP as OP_NOP
from hemolab.events._ops import OP_OUTPUT as OP_OUTPUT
from hemolab.events._ops import OP_PARAM as OP_PARAM
from hemolab.events._ops import OP_PHLEBOTOMY as OP_PHLEBOTOMY
from hemolab.events._ops import OP_RATE as OP_RATE
from hemolab.events._ops import OP_RATE_F as OP_RATE_F
from hemolab.events._ops import OP_REPLACE as OP_REPLACE
from hemolab.events._ops import OP_RESET as OP_RESET
from hemolab.events._schedule import DoseProperties as DoseProperties
from hemolab.events._schedule import Schedule as Schedule
from hemolab.events._schedule import build_schedule as build_schedule

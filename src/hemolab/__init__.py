"""hemolab: an in-silico hematology laboratory.

model → compile → schedule → solve → results → analysis. See README.md for a tour.
"""

from hemolab._errors import (
    DatasetError as DatasetError,
    DatasetIssue as DatasetIssue,
    DelayError as DelayError,
    HemolabError as HemolabError,
    HemolabWarning as HemolabWarning,
    MissingParameterError as MissingParameterError,
    ModelError as ModelError,
    ScheduleError as ScheduleError,
    SolveError as SolveError,
    UnitError as UnitError,
    UnknownSymbolError as UnknownSymbolError,
    UnsupportedError as UnsupportedError,
)
from hemolab.model import (
    BloodSpec as BloodSpec,
    Covariate as Covariate,
    Model as Model,
    Observable as Observable,
    Parameter as Parameter,
    State as State,
)

__version__ = "0.1.0"

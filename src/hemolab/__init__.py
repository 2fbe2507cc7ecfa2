"""hemolab: an in-silico hematology laboratory.

model → compile → schedule → solve → results → analysis. See README.md for a tour.
"""

from hemolab import _jax_config  # noqa: F401  (float64 and the compile cache, first)
from hemolab._caches import clear_caches as clear_caches
from hemolab._errors import (
    DatasetError as DatasetError,
    DatasetIssue as DatasetIssue,
    DelayError as DelayError,
    HemolabError as HemolabError,
    HemolabWarning as HemolabWarning,
    MissingParameterError as MissingParameterError,
    ModelError as ModelError,
    SBMLError as SBMLError,
    ScheduleError as ScheduleError,
    SolveError as SolveError,
    UnitError as UnitError,
    UnknownSymbolError as UnknownSymbolError,
    UnsupportedError as UnsupportedError,
    UnsupportedSBMLError as UnsupportedSBMLError,
)
from hemolab._simulate import simulate as simulate
from hemolab.compile import CompiledModel as CompiledModel, compile_model as compile_model
from hemolab.events import Course as Course, Regimen as Regimen, Trigger as Trigger
from hemolab.experiments import ExperimentStore as ExperimentStore
from hemolab.library import get_model as get_model, list_models as list_models
from hemolab.model import (
    BloodSpec as BloodSpec,
    Covariate as Covariate,
    Disease as Disease,
    Model as Model,
    Observable as Observable,
    Parameter as Parameter,
    ResidualError as ResidualError,
    State as State,
    Variability as Variability,
)
from hemolab.population import (
    Population as Population,
    PopulationResult as PopulationResult,
    read_omega as read_omega,
    simulate_population as simulate_population,
)
from hemolab.protocols import (
    Protocol as Protocol,
    read_protocol as read_protocol,
    run_protocol as run_protocol,
)
from hemolab.reports import write_report as write_report
from hemolab.results import Results as Results, read_metadata as read_metadata
from hemolab.sbml import read_antimony as read_antimony, read_sbml as read_sbml
from hemolab.solve import Status as Status

__version__ = "0.1.0"

__all__ = [
    "BloodSpec",
    "CompiledModel",
    "Course",
    "Covariate",
    "DatasetError",
    "DatasetIssue",
    "DelayError",
    "Disease",
    "ExperimentStore",
    "HemolabError",
    "HemolabWarning",
    "MissingParameterError",
    "Model",
    "ModelError",
    "Observable",
    "Parameter",
    "Population",
    "PopulationResult",
    "Protocol",
    "Regimen",
    "ResidualError",
    "Results",
    "SBMLError",
    "ScheduleError",
    "SolveError",
    "State",
    "Status",
    "Trigger",
    "UnitError",
    "UnknownSymbolError",
    "UnsupportedError",
    "UnsupportedSBMLError",
    "Variability",
    "__version__",
    "clear_caches",
    "compile_model",
    "get_model",
    "list_models",
    "read_antimony",
    "read_metadata",
    "read_omega",
    "read_protocol",
    "read_sbml",
    "run_protocol",
    "simulate",
    "simulate_population",
    "write_report",
]

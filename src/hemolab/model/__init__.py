"""Model definitions (host-side, immutable)."""

from hemolab.model._disease import Disease as Disease
from hemolab.model._haemolysis import haemolysis as haemolysis
from hemolab.model._model import (
    BloodSpec as BloodSpec,
    Covariate as Covariate,
    Model as Model,
    Observable as Observable,
    Parameter as Parameter,
    State as State,
)
from hemolab.model._variability import (
    ResidualError as ResidualError,
    Variability as Variability,
)

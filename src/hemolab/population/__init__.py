"""Virtual populations: IIV (log-normal, correlated omega), covariates, residual error, and
chunked simulation with bounded memory."""

from hemolab.population._distributions import (
    Categorical as Categorical,
    Empirical as Empirical,
    LogNormal as LogNormal,
    Normal as Normal,
    Uniform as Uniform,
)
from hemolab.population._omega_file import read_omega as read_omega
from hemolab.population._population import BLOCK as BLOCK, Population as Population
from hemolab.population._run import (
    PopulationResult as PopulationResult,
    simulate_population as simulate_population,
)
from hemolab.population._sketch import BandSketch as BandSketch

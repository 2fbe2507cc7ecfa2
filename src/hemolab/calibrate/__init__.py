"""Bayesian individual calibration: MAP, its Laplace approximation, and NUTS posteriors."""

from hemolab.calibrate._fitfile import (
    FitRecord as FitRecord,
    calibrate_record as calibrate_record,
    load_fit as load_fit,
)
from hemolab.calibrate._gof import (
    GoodnessOfFit as GoodnessOfFit,
    goodness_of_fit as goodness_of_fit,
    plot_gof as plot_gof,
)
from hemolab.calibrate._map import (
    MapFit as MapFit,
    fit_map as fit_map,
    fit_map_batch as fit_map_batch,
    laplace_batch as laplace_batch,
)
from hemolab.calibrate._nuts import PosteriorFit as PosteriorFit, sample_nuts as sample_nuts
from hemolab.calibrate._problem import (
    CalibrationError as CalibrationError,
    Observations as Observations,
    Patient as Patient,
)

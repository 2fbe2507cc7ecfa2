"""Bayesian individual calibration: MAP and its Laplace approximation (NUTS next)."""

from hemolab.calibrate._map import (
    CalibrationError as CalibrationError,
    MapFit as MapFit,
    Observations as Observations,
    Patient as Patient,
    fit_map as fit_map,
    fit_map_batch as fit_map_batch,
)

"""Bayesian individual calibration: MAP and its Laplace approximation (NUTS next)."""

from hemolab.calibrate._map import (
    CalibrationError as CalibrationError,
    MapFit as MapFit,
    Observations as Observations,
    fit_map as fit_map,
)

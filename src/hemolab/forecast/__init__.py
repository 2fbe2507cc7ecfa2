"""Forecasts from a calibration: draws, time to a threshold, CTCAE v5.0 grades."""

from hemolab.forecast._ctcae import (
    CTCAE_TERMS as CTCAE_TERMS,
    CTCAE_VERSION as CTCAE_VERSION,
    ctcae_grades as ctcae_grades,
)
from hemolab.forecast._forecast import (
    RESEARCH_USE as RESEARCH_USE,
    Forecast as Forecast,
    forecast_from_fit as forecast_from_fit,
    laplace_draws as laplace_draws,
)
from hemolab.forecast._from_fit import (
    ThresholdForecast as ThresholdForecast,
    plot_fan as plot_fan,
    threshold_forecast as threshold_forecast,
)
from hemolab.forecast._history import (
    ForecastEntry as ForecastEntry,
    forecast_history as forecast_history,
)
from hemolab.forecast._threshold import (
    Threshold as Threshold,
    TimeToThreshold as TimeToThreshold,
    first_crossing as first_crossing,
    time_to_threshold as time_to_threshold,
)

"""A calibrated patient "now": the parameter draws of a fit and the state each gives at the
last observation, so that a protocol runs over the posterior from where the patient is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["PatientNow", "patient_now"]


@dataclass(frozen=True)
class PatientNow:
    """``draws`` (``parameter → (N,)``), ``states`` (``state → (N,)`` at ``t_last``, the
    last observation on the patient's clock) and the patient's pseudonym."""

    patient: str
    t_last: float
    time_unit: str
    draws: dict[str, np.ndarray]
    states: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(next(iter(self.states.values())))

    def to_json(self) -> dict[str, Any]:
        """The ``fit`` entry of ``hemolab run|search --json`` (schema ``run``/``search``)."""
        return {"patient": self.patient, "t_last_observation": self.t_last,
                "time_unit": self.time_unit, "n_draws": self.n}  # fmt: skip


def patient_now(fit: Any, model: Any, *, n_draws: int = 200, seed: int = 0) -> PatientNow:
    """Simulate each of ``n_draws`` parameter draws of ``fit`` (a
    :class:`~hemolab.calibrate.FitRecord` of ``model``) through the patient's recorded
    dosing to the last observation.

    Raises
    ------
    HemolabError
        The fit is of another model (or the model changed since), or a draw fails to solve.
    """
    import pandas as pd

    from hemolab._simulate import simulate
    from hemolab.compile import model_hash

    if fit.model_hash != model_hash(model):
        raise HemolabError(
            f"the fit is of model {fit.model!r} (hash {fit.model_hash}), not of "
            f"{model.name!r} as it is now ({model_hash(model)}): calibrate again"
        )
    if n_draws < 1:
        raise HemolabError(f"the number of draws must be >= 1, got {n_draws}")
    params = fit.parameter_draws(n_draws, seed)
    n = len(next(iter(params.values())))
    events = pd.DataFrame(fit.events) if fit.events else None
    t_last = float(fit.t_last_observation)
    res = simulate(
        model,
        events,
        params=params,
        grid=[t_last],
        outputs=list(model.state_names),
    )
    bad = [s for s in res.status_labels if s != "ok"]
    if bad:
        raise HemolabError(f"{len(bad)} of {n} draws failed to solve to the last observation")
    col = int(np.flatnonzero(np.asarray(res.time[0]) == t_last)[-1])
    states = {s: np.asarray(res.variable(s))[:, col].copy() for s in model.state_names}
    if n > 1 and len(states[model.state_names[0]]) == 1:
        states = {s: np.repeat(v, n) for s, v in states.items()}
    return PatientNow(fit.patient, t_last, fit.time_unit, params, states)

"""Goodness of fit for one patient, as a pharmacometrician reads it.

Three panels: observed against individual prediction (IPRED, the MAP trajectory at the
observation times) with the identity line; individual weighted residuals over time (IWRES,
``(y − f)/sd`` by the observable's residual error model, on the log scale for exponential
error) with ±1.96; and a visual predictive check against the prior population (the
5th–95th percentiles and median of simulated observations, parameters drawn from the
model's IIV and residual error added) with the patient's data over it — is this patient
plausible under the population model at all? Censored values are drawn at their LLOQ as
open markers and have no residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GoodnessOfFit", "goodness_of_fit", "plot_gof"]


@dataclass(frozen=True)
class GoodnessOfFit:
    observable: tuple[str, ...]
    time: np.ndarray
    dv: np.ndarray  # NaN where censored
    censored: np.ndarray
    ipred: np.ndarray
    iwres: np.ndarray  # NaN where censored


def goodness_of_fit(model: Any, record: Any) -> GoodnessOfFit:
    """IPRED and IWRES of a fit record (``hemolab.calibrate.FitRecord``) at its observations."""
    import pandas as pd

    from hemolab._simulate import simulate

    obs = record.observations
    events = None if record.events is None else pd.DataFrame(record.events)
    names = sorted(set(obs.observable))
    res = simulate(model, events, params=record.estimate, grid=np.unique(obs.time),
                   outputs=names, rtol=1e-8, atol=1e-10, throw=True)  # fmt: skip
    times = np.asarray(res.time[0])
    errors = {e.observable: e for e in model.residual_error}
    ipred = np.empty(len(obs.time))
    iwres = np.full(len(obs.time), np.nan)
    for i, (name, t) in enumerate(zip(obs.observable, obs.time, strict=True)):
        f = float(np.asarray(res.variable(name))[0][np.argmin(np.abs(times - t))])
        ipred[i] = f
        if obs.censored[i]:
            continue
        e, y = errors[name], obs.value[i]
        if e.kind == "exponential":
            iwres[i] = (np.log(y) - np.log(f)) / e.additive
        else:
            sd = np.hypot(e.additive if e.kind != "proportional" else 0.0,
                          (e.proportional if e.kind != "additive" else 0.0) * f)  # fmt: skip
            iwres[i] = (y - f) / sd
    return GoodnessOfFit(tuple(obs.observable), obs.time, obs.value, obs.censored, ipred, iwres)


def plot_gof(
    model: Any, record: Any, path: str | Path, *, n_prior: int = 500, seed: int = 0
) -> Path:
    """The three goodness-of-fit panels of one observable (the first observed) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from hemolab._simulate import simulate
    from hemolab.forecast import RESEARCH_USE
    from hemolab.population import Population

    gof = goodness_of_fit(model, record)
    name = gof.observable[0]
    sel = np.array([o == name for o in gof.observable])
    cens = gof.censored & sel
    real = ~gof.censored & sel
    events = None if record.events is None else pd.DataFrame(record.events)
    grid = np.linspace(0.0, float(gof.time.max()) * 1.05 + 1e-9, 120)
    pop = Population(model, n=n_prior, seed=seed)
    sim = simulate(model, events, params=pop.parameters(), grid=grid, outputs=[name])
    f = np.asarray(sim.variable(name), dtype=np.float64)
    ok = np.asarray(sim.status) == 0
    err = {e.observable: e for e in model.residual_error}[name]
    y = err.sample(f[ok], np.random.default_rng(seed))
    band = np.nanquantile(y, [0.05, 0.5, 0.95], axis=0)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=110)
    ax = axes[0]
    ax.plot(gof.ipred[real], gof.dv[real], "ko", ms=4)
    lim = [min(gof.ipred[sel].min(), np.nanmin(gof.dv[sel], initial=np.inf)),
           max(gof.ipred[sel].max(), np.nanmax(gof.dv[sel], initial=-np.inf))]  # fmt: skip
    ax.plot(lim, lim, color="grey", lw=1)
    ax.set_xlabel(f"IPRED {name}")
    ax.set_ylabel(f"observed {name}")
    ax.set_title("observed vs individual prediction", fontsize=9)
    ax = axes[1]
    ax.plot(gof.time[real], gof.iwres[real], "ko", ms=4)
    for level in (-1.96, 0.0, 1.96):
        ax.axhline(level, color="grey", lw=1, ls="-" if level == 0 else "--")
    ax.set_xlabel(f"time ({model.time_unit})")
    ax.set_ylabel("IWRES")
    ax.set_title("individual weighted residuals", fontsize=9)
    ax = axes[2]
    ax.fill_between(grid, band[0], band[2], color="tab:blue", alpha=0.2,
                    label=f"prior population 90 % (n={int(ok.sum())})")  # fmt: skip
    ax.plot(grid, band[1], color="tab:blue", lw=1.2, label="prior median")
    ax.plot(gof.time[real], gof.dv[real], "ko", ms=4, label="patient")
    if cens.any():
        lloq = record.observations.lloq[cens]
        ax.plot(gof.time[cens], lloq, "o", mfc="none", mec="k", ms=5, label="< LLOQ")
    ax.set_xlabel(f"time ({model.time_unit})")
    ax.set_ylabel(name)
    ax.set_title("visual predictive check (prior)", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"{record.patient}: {model.name} ({record.method})", fontsize=10)
    fig.text(0.01, 0.01, RESEARCH_USE, fontsize=7, color="grey")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out

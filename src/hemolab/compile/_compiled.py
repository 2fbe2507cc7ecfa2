"""``compile_model``: a Model → a CompiledModel of per-patient JAX functions.

Compilation here means code generation (fast, pure Python); XLA compilation happens once per
(model, chunk size, schedule bucket) inside the solver and is reused across population sizes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from hemolab._errors import MissingParameterError
from hemolab.model._model import Model

__all__ = ["CompiledModel", "codegen_context", "compile_model", "engine_inputs", "model_hash"]

Fn = Callable[..., Any]


def model_hash(model: Model) -> str:
    """A stable hash of the model definition (what is solved, not how it is named in memory)."""
    desc = {
        "name": model.name,
        "time_unit": model.time_unit,
        "states": [repr(s) for s in model.states],
        "parameters": [repr(p) for p in model.parameters],
        "covariates": [repr(c) for c in model.covariates],
        "assignments": sorted((k, str(v)) for k, v in model.assignments.items()),
        "observables": [repr(o) for o in model.observables],
        "blood": repr(model.blood),
    }
    if model.triggers:  # part of what is solved (kept out otherwise: stable hashes)
        desc["triggers"] = [repr(t) for t in model.triggers]
    if model.history_segments is not None:  # a solver setting: its compiled loops differ
        desc["history_segments"] = model.history_segments
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """A model turned into per-patient functions of ``(t, y, p, z)``.

    ``y``: states (natural coordinates), ``p``: inputs (parameters then covariates),
    ``z``: values of the delay terms ``model.delays`` (empty for ODE models).
    The solver works in *solver coordinates*: ``log(y)`` for states declared positive.
    """

    model: Model
    rhs: Fn
    initial: Fn
    history: Fn
    delays: Fn
    observables: Fn
    bioavailability: Fn
    blood_volume: Fn
    host_dose_props: Fn
    log_mask: np.ndarray
    typical_inputs: np.ndarray  # parameters' typical values, covariates' defaults (NaN if none)
    hash: str
    sources: dict[str, str] = field(repr=False)
    linear_states: tuple[int, ...] = ()  # solved in closed form between events (see _linear)
    linear_matrix: Fn | None = None  # (t, y, p, z) -> K flattened row-major
    # du/dt in solver coordinates, (t, [u, x_linear], p, z) -> (n,), zero for linear states;
    # None: the solver evaluates ``rhs`` and divides (see _logspace)
    rhs_solver: Fn | None = None

    @property
    def n_states(self) -> int:
        return len(self.model.states)

    @property
    def n_inputs(self) -> int:
        """Width of the engine's input vector: parameters, covariates, then two hidden
        entries per covariate (slope and reference time of linear interpolation)."""
        return len(self.typical_inputs)

    @property
    def n_delays(self) -> int:
        return len(self.model.delays)

    @property
    def has_delays(self) -> bool:
        return self.n_delays > 0

    def inputs_from(self, params: dict[str, Any] | None = None, n: int | None = None) -> np.ndarray:
        """An ``(n, n_inputs)`` input matrix: typical values overridden by ``params``.

        ``params`` maps a parameter or covariate name to a scalar or a length-``n`` array.
        """
        params = dict(params or {})
        names = self.model.inputs
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise MissingParameterError(
                f"model {self.model.name!r} has no parameter or covariate {unknown}; "
                f"inputs: {list(names)}"
            )
        sizes = {np.size(v) for v in params.values() if np.ndim(v) > 0}
        if n is None:
            n = max(sizes, default=1)
        bad = sorted(s for s in sizes if s != n)
        if bad:
            raise MissingParameterError(
                f"parameter arrays must all have length {n} (the batch size), got lengths {bad}"
            )
        out = np.tile(self.typical_inputs, (n, 1)).astype(np.float64)  # hidden entries: 0
        for k, v in params.items():
            out[:, names.index(k)] = np.asarray(v, dtype=np.float64)
        missing = [names[j] for j in np.flatnonzero(np.isnan(out).any(axis=0))]
        if missing:
            raise MissingParameterError(
                f"model {self.model.name!r}: no value for {missing} (covariates without a "
                "default need a value from the dataset or params=...)"
            )
        return out


def engine_inputs(model: Model) -> tuple[str, ...]:
    """Names of the engine's input vector: ``model.inputs`` then, per covariate, the slope and
    reference time of its linear interpolation (zero slope: piecewise constant)."""
    hidden = [f"__{kind}_{c}" for c in model.covariate_names for kind in ("slope", "tref")]
    return (*model.inputs, *hidden)


def codegen_context(model: Model) -> dict[str, Any]:
    """Arguments shared by every generated function of ``model``."""
    names = engine_inputs(model)
    slopes = {
        c: (names.index(f"__slope_{c}"), names.index(f"__tref_{c}")) for c in model.covariate_names
    }
    return dict(
        state_names=model.state_names,
        input_names=names,
        assignments=model.parsed.assignments,
        delays=model.parsed.delays,
        covariate_slopes=slopes,
    )


def compile_model(model: Model) -> CompiledModel:
    """Generate the per-patient JAX functions of ``model`` (cheap; cache the result).

    Examples
    --------
    >>> import hemolab as hl
    >>> m = hl.Model("decay", time_unit="d",
    ...     states=[hl.State("x", "-k*x", initial=1.0)], parameters=[hl.Parameter("k", 0.1)])
    >>> cm = hl.compile_model(m)
    >>> cm.n_states
    1
    """
    from hemolab.compile._codegen import generate_function

    parsed = model.parsed
    common = codegen_context(model)
    sources: dict[str, str] = {}

    def gen(name: str, outputs: list[sp.Expr], backend: str = "jax") -> Fn:
        src, ns = generate_function(name, outputs, backend=backend, **common)  # type: ignore[arg-type]
        sources[f"{name}:{backend}"] = src
        return ns[name]  # type: ignore[return-value]

    nan = sp.nan
    one, zero = sp.Integer(1), sp.Integer(0)
    rhs = gen("rhs", list(parsed.ddt))
    initial = gen("initial", list(parsed.initial))
    history = gen("history", [h if h is not None else nan for h in parsed.history])
    delays = gen("delays", [tau for _, tau in parsed.delays])
    observables = gen("observables", list(parsed.observables))
    f_exprs = [f if f is not None else one for f in parsed.bioavailability]
    bioavailability = gen("bioavailability", f_exprs)
    blood_volume = gen(
        "blood_volume", [parsed.blood_volume if parsed.blood_volume is not None else nan]
    )
    host_f = gen("host_f", f_exprs, "numpy")
    host_lag = gen("host_lag", [x if x is not None else zero for x in parsed.lag], "numpy")
    host_rate = gen(
        "host_rate", [x if x is not None else nan for x in parsed.infusion_rate], "numpy"
    )
    host_dur = gen(
        "host_dur", [x if x is not None else nan for x in parsed.infusion_duration], "numpy"
    )

    def host_dose_props(inputs_matrix: np.ndarray) -> dict[str, np.ndarray]:
        """F, lag, model rate and model duration per subject: arrays (S, n_states).

        One vectorised call per property: the generated NumPy code indexes ``p[j]``, so
        passing the inputs as columns evaluates every subject at once.
        """
        cols = np.atleast_2d(np.asarray(inputs_matrix, dtype=np.float64)).T
        t = np.zeros(cols.shape[1])
        z = np.zeros(len(parsed.delays))
        fns = (("f", host_f), ("lag", host_lag), ("rate", host_rate), ("duration", host_dur))
        return {key: np.asarray(fn(t, None, cols, z), dtype=float).T for key, fn in fns}

    from hemolab.compile._linear import linear_subsystem

    lin_idx, lin_k = linear_subsystem(model)
    linear_matrix = gen("linear_matrix", list(lin_k)) if lin_idx else None
    from hemolab.compile._logspace import solver_rhs

    rhs_solver: Fn | None = None
    solver_form = (
        solver_rhs(model, lin_idx) if (lin_idx or any(s.positive for s in model.states)) else None
    )
    if solver_form is not None:
        u_assign, u_outputs, u_names = solver_form
        src, ns = generate_function(
            "rhs_solver",
            u_outputs,
            state_names=u_names,
            input_names=common["input_names"],
            assignments=u_assign,
            covariate_slopes=common["covariate_slopes"],
        )
        sources["rhs_solver:jax"] = src
        rhs_solver = ns["rhs_solver"]  # type: ignore[assignment]
    typical = np.array(
        [p.value for p in model.parameters]
        + [np.nan if c.default is None else c.default for c in model.covariates]
        + [0.0, 0.0] * len(model.covariates),  # interpolation slope and reference time
        dtype=np.float64,
    )
    return CompiledModel(
        model=model,
        rhs=rhs,
        initial=initial,
        history=history,
        delays=delays,
        observables=observables,
        bioavailability=bioavailability,
        blood_volume=blood_volume,
        host_dose_props=host_dose_props,
        log_mask=np.array([s.positive for s in model.states], dtype=bool),
        typical_inputs=typical,
        hash=model_hash(model),
        sources=sources,
        linear_states=lin_idx,
        linear_matrix=linear_matrix,
        rhs_solver=rhs_solver,
    )

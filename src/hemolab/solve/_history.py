"""Delay history for the method of steps: a ring of past dense-output segments per patient.

Each accepted step appends one segment (start time, length, solver-coordinate values and the
four dense-output coefficient vectors of the *delayed* states only). A delayed value
``x(t - tau)`` is read from the constant history before the (re)start time, from the segment
containing it otherwise (binary search over the ring), so steps never exceed the smallest
delay and no implicit iteration is needed. A ring too small to reach back one maximal delay
is reported as ``history_overflow`` for that patient; it is never silently wrong
(BENCHMARKS.md P2: an unchecked ring gave wrong answers).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hemolab.compile._compiled import CompiledModel
from hemolab.solve._dopri5 import Stepper

__all__ = ["History"]


@dataclass(frozen=True)
class History:
    """Static description of a model's delay terms and ring size (pure functions of state)."""

    size: int
    dstates: np.ndarray  # indices of states read with a delay (m,)
    term_pos: np.ndarray  # for each delay term k, its position in dstates (n_delays,)
    log_mask: np.ndarray  # (m,) which delayed states are in log coordinates
    delays_fn: Any
    history_fn: Any
    initial_fn: Any
    n_states: int
    n_delays: int
    stepper: Stepper
    # state-dependent delays (``x(t - tau(t, y))``): their lengths are evaluated where they are
    # read, in ``passes`` rounds when a length itself reads delayed values
    variable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # (n_delays,)
    steers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # read by rhs
    taus_fn: Any = None  # (t, y, p, z) batched -> (C, n_delays)
    passes: int = 1

    WINDOW = 8  # segments searched from the cursor before falling back to a binary search

    @property
    def any_variable(self) -> bool:
        return bool(np.any(self.variable))

    @staticmethod
    def for_model(cm: CompiledModel, *, size: int, stepper: Stepper) -> History:
        names = cm.model.state_names
        dnames = sorted({s for s, _ in cm.model.delays}, key=names.index)
        dstates = np.array([names.index(s) for s in dnames], dtype=np.int32)
        term_pos = np.array([dnames.index(s) for s, _ in cm.model.delays], dtype=np.int32)
        n, nd = cm.n_states, cm.n_delays
        zeros_y, zeros_z = jnp.zeros(n), jnp.zeros(nd)
        variable, steers, passes = _delay_structure(cm)
        return History(
            variable=variable,
            steers=steers,
            taus_fn=jax.vmap(cm.delays),
            passes=passes,
            size=max(int(size), 16),
            dstates=dstates,
            term_pos=term_pos,
            log_mask=np.asarray(cm.log_mask)[dstates],
            delays_fn=jax.vmap(lambda p: cm.delays(0.0, zeros_y, p, zeros_z)),
            # the past may depend on time (SBML: a state's initial assignment read at t < 0)
            history_fn=jax.vmap(lambda t, p: cm.history(t, zeros_y, p, zeros_z)),
            initial_fn=jax.vmap(lambda p: cm.initial(0.0, zeros_y, p, zeros_z)),
            n_states=n,
            n_delays=nd,
            stepper=stepper,
        )

    # -- state ---------------------------------------------------------------------------------
    def init_lanes(self, p: jax.Array, t0: jax.Array) -> dict[str, jax.Array]:
        """An empty ring per lane, history starting at ``t0``."""
        C, R, m = p.shape[0], self.size, len(self.dstates)
        return dict(
            t_start=jnp.full((C, R), jnp.inf),
            h=jnp.ones((C, R)),
            u0=jnp.zeros((C, R, m)),
            coef=jnp.zeros((C, R, m, self.stepper.n_coef)),
            count=jnp.zeros(C, dtype=jnp.int32),
            head=jnp.zeros(C, dtype=jnp.int32),
            t_begin=t0.astype(jnp.float64),
            y_begin=self.initial_fn(p)[:, self.dstates],
            overflow=jnp.zeros(C, dtype=bool),
            cursor=jnp.zeros((C, self.n_delays), dtype=jnp.int32),
        )

    @staticmethod
    def merge(mask: jax.Array, new: dict, old: dict) -> dict:
        """Lane-wise choice between two history states (``mask`` (C,) picks ``new``).

        Only the small per-lane fields are switched: a ring with ``count = 0`` is never read,
        so the big segment arrays are left as they are (no copy per refill).
        """
        out = dict(old)
        for k in ("count", "head", "t_begin", "y_begin", "overflow", "cursor"):
            m = mask.reshape(mask.shape + (1,) * (old[k].ndim - 1))
            out[k] = jnp.where(m, new[k], old[k])
        return out

    def on_reset(self, hs: dict, mask: jax.Array, t: jax.Array, p: jax.Array) -> dict:
        """Restart the history at ``t`` for the masked patients (EVID 3/4)."""
        hs = dict(hs)
        hs["count"] = jnp.where(mask, 0, hs["count"])
        hs["cursor"] = jnp.where(mask[:, None], 0, hs["cursor"])
        hs["t_begin"] = jnp.where(mask, t, hs["t_begin"])
        hs["y_begin"] = jnp.where(mask[:, None], self.initial_fn(p)[:, self.dstates], hs["y_begin"])
        return hs

    def max_step(self, hs: dict, p: jax.Array, taus_now: jax.Array | None = None) -> jax.Array:
        """Steps never exceed the smallest delay (explicit method of steps); state-dependent
        delays count at their current length ``taus_now`` when the right-hand side reads
        them."""
        taus = self.delays_fn(p)
        if self.any_variable and taus_now is not None:
            var = jnp.asarray(self.variable)[None, :]
            taus = jnp.where(var, taus_now, taus)
            taus = jnp.where(var & ~jnp.asarray(self.steers)[None, :], jnp.inf, taus)
        return jnp.min(taus, axis=1)

    def current_taus(self, hs: dict, t: jax.Array, y: jax.Array, p: jax.Array) -> jax.Array:
        """Every delay's length at ``(t, y)`` (C, n_delays)."""
        z = self.lookup(hs, t, p, y)
        return self.taus_fn(t, y, p, z)

    def bad_delay(self, taus_now: jax.Array) -> jax.Array:
        """(C,) a state-dependent delay read by the right-hand side is not > 0, or one read
        only by outputs is negative (it would read the future)."""
        var = jnp.asarray(self.variable)[None, :]
        steer = jnp.asarray(self.steers)[None, :]
        bad = var & ((steer & ~(taus_now > 0)) | (~steer & ~(taus_now >= 0)))
        return jnp.any(bad, axis=1)

    def overflowed(self, hs: dict) -> jax.Array:
        return hs["overflow"]

    def append(
        self,
        hs: dict,
        accept: jax.Array,
        t: jax.Array,
        h: jax.Array,
        u: jax.Array,
        coef: jax.Array,
        p: jax.Array,
        taus_now: jax.Array | None = None,
    ) -> dict:
        """Record the accepted step [t, t+h] of the masked patients."""
        R = self.size
        C = t.shape[0]
        rows = jnp.arange(C)
        head = hs["head"]
        taus = self.delays_fn(p)
        if self.any_variable and taus_now is not None:
            # state-dependent lengths may grow: keep twice their current reach
            taus = jnp.where(jnp.asarray(self.variable)[None, :], 2.0 * taus_now, taus)
        tau_max = jnp.max(taus, axis=1)
        old_end = hs["t_start"][rows, head] + hs["h"][rows, head]
        full = hs["count"] >= R
        # the overwritten segment may still be needed by queries reaching back tau_max
        lost = accept & full & (old_end > t + h - tau_max) & (old_end > hs["t_begin"])
        new = dict(hs)
        new["overflow"] = hs["overflow"] | lost

        def put(arr: jax.Array, val: jax.Array) -> jax.Array:
            cur = arr[rows, head]
            mask = accept.reshape((C,) + (1,) * (val.ndim - 1))
            return arr.at[rows, head].set(jnp.where(mask, val, cur), unique_indices=True)

        new["t_start"] = put(hs["t_start"], t)
        new["h"] = put(hs["h"], h)
        new["u0"] = put(hs["u0"], u[:, self.dstates])
        new["coef"] = put(hs["coef"], coef[:, self.dstates, :])
        new["head"] = jnp.where(accept, (head + 1) % R, head)
        # a full ring drops its oldest segment: logical indices (the cursors) move down one
        shift = (accept & full)[:, None]
        new["cursor"] = jnp.where(shift, jnp.maximum(hs["cursor"] - 1, 0), hs["cursor"])
        new["count"] = jnp.where(accept, jnp.minimum(hs["count"] + 1, R), hs["count"])
        return new

    # -- lookup --------------------------------------------------------------------------------
    def lookup(self, hs: dict, t: jax.Array, p: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Values of every delay term at time ``t`` (C,) → (C, n_delays), natural coords.
        State-dependent delays need the states ``y`` at ``t``."""
        taus = self.delays_fn(p)  # (C, n_delays)
        z = self._values_at(hs, t, taus, p)
        if not self.any_variable or y is None:
            return z
        var = jnp.asarray(self.variable)[None, :]
        for _ in range(self.passes):
            taus = jnp.where(var, self.taus_fn(t, y, p, z), taus)
            z = self._values_at(hs, t, taus, p)
        return z

    def _segment(self, hs: dict, q: jax.Array, first: jax.Array, cursor: jax.Array) -> jax.Array:
        """Logical index of the last segment starting at or before ``q`` (C,).

        Queries move forward with time, so the segment is almost always among the ``WINDOW``
        segments from the lane's cursor (where the previous step's query was): one gather, no
        loop. Lanes whose query left the window fall back to a binary search (a branch taken
        only when some lane needs it).
        """
        R, W = self.size, min(self.WINDOW, self.size)
        C = q.shape[0]
        rows = jnp.arange(C)
        count = hs["count"]
        last = jnp.maximum(count - 1, 0)
        base = jnp.clip(cursor, 0, last)
        js = base[:, None] + jnp.arange(W)[None, :]
        tsw = hs["t_start"][rows[:, None], (first[:, None] + js) % R]
        valid = js <= last[:, None]
        lo = base + jnp.sum((valid & (tsw <= q[:, None]))[:, 1:], axis=1).astype(jnp.int32)
        ahead = valid[:, W - 1] & (tsw[:, W - 1] <= q) & (js[:, W - 1] < last)
        behind = (tsw[:, 0] > q) & (base > 0)
        missed = (ahead | behind) & (count > 0)

        def search(lo: jax.Array) -> jax.Array:
            def bisect(_, bounds):
                a, b = bounds
                mid = (a + b + 1) // 2
                go = hs["t_start"][rows, (first + mid) % R] <= q
                a = jnp.where(go, mid, a)
                b = jnp.maximum(jnp.where(go, b, mid - 1), a)
                return a, b

            n_iter = int(np.ceil(np.log2(R))) + 1
            full, _ = jax.lax.fori_loop(0, n_iter, bisect, (jnp.zeros(C, dtype=jnp.int32), last))
            return jnp.where(missed, full, lo)

        return jax.lax.cond(jnp.any(missed), search, lambda lo: lo, lo)

    def advance(self, hs: dict, t: jax.Array, p: jax.Array, y: jax.Array) -> dict:
        """Move each lane's cursors to the segments its delays read at ``t`` (after a step)."""
        R = self.size
        taus = self.delays_fn(p)
        if self.any_variable:
            z = self.lookup(hs, t, p, y)
            taus = jnp.where(jnp.asarray(self.variable)[None, :], self.taus_fn(t, y, p, z), taus)
        first = (hs["head"] - hs["count"]) % R
        cur = [
            self._segment(hs, t - taus[:, k], first, hs["cursor"][:, k])
            for k in range(self.n_delays)
        ]
        return {**hs, "cursor": jnp.stack(cur, axis=1)}

    def _values_at(self, hs: dict, t: jax.Array, taus: jax.Array, p: jax.Array) -> jax.Array:
        R = self.size
        C = t.shape[0]
        rows = jnp.arange(C)
        count, head = hs["count"], hs["head"]
        first = (head - count) % R
        out = []
        for k in range(self.n_delays):
            j = int(self.term_pos[k])
            q = t - taus[:, k]

            lo = self._segment(hs, q, first, hs["cursor"][:, k])
            idx = (first + lo) % R
            ts = hs["t_start"][rows, idx]
            hh = hs["h"][rows, idx]
            th = jnp.clip((q - ts) / hh, 0.0, 1.0)
            uq = self.stepper.dense(
                hs["u0"][rows, idx, j][:, None], hh, hs["coef"][rows, idx, j, :][:, None, :], th
            )[:, 0]
            yq = jnp.exp(uq) if self.log_mask[j] else uq
            before = q < hs["t_begin"]
            empty = count == 0
            val = jnp.where(empty, hs["y_begin"][:, j], yq)
            hist_y = self.history_fn(q, p)[:, self.dstates]  # (C, m), the past at q
            out.append(jnp.where(before, hist_y[:, j], val))
        return jnp.stack(out, axis=1)


_STRUCTURE: weakref.WeakKeyDictionary[CompiledModel, tuple[np.ndarray, np.ndarray, int]] = (
    weakref.WeakKeyDictionary()
)


def _delay_structure(cm: CompiledModel) -> tuple[np.ndarray, np.ndarray, int]:
    """Cached per compiled model (the engine asks at every run): see ``_analyse_delays``."""
    if cm not in _STRUCTURE:
        _STRUCTURE[cm] = _analyse_delays(cm)
    return _STRUCTURE[cm]


def _analyse_delays(cm: CompiledModel) -> tuple[np.ndarray, np.ndarray, int]:
    """Which delays have state-dependent lengths, which the right-hand side reads (directly,
    through assignments, or through another such delay's length), and how deep lengths nest
    (rounds of lookup needed)."""
    import sympy as sp

    from hemolab.model._expr import TIME, delay_terms, symbol_names

    parsed = cm.model.parsed
    terms = list(parsed.delays)
    static = set(cm.model.parameter_names) | set(cm.model.covariate_names)

    def inline(e: sp.Basic) -> sp.Basic:
        for name, expr in reversed(parsed.assignments):
            e = e.xreplace({sp.Symbol(name, real=True): expr})
        return e

    def term_ids(e: sp.Basic) -> set[int]:
        found = {(str(d.args[0]), sp.srepr(d.args[1])) for d in delay_terms(e)}
        return {k for k, (s, tau) in enumerate(terms) if (s, sp.srepr(tau)) in found}

    taus = [inline(tau) for _, tau in terms]
    variable = np.array(
        [bool(symbol_names(t) - static) or t.has(TIME) or bool(delay_terms(t)) for t in taus],
        dtype=bool,
    )
    steers = np.zeros(len(terms), dtype=bool)
    todo = set().union(*(term_ids(inline(e)) for e in parsed.ddt)) if parsed.ddt else set()
    while todo:
        k = todo.pop()
        if not steers[k]:
            steers[k] = True
            todo |= term_ids(taus[k])
    depth: dict[int, int] = {}

    def depth_of(k: int, seen: tuple[int, ...] = ()) -> int:
        if k in depth:
            return depth[k]
        if k in seen:
            return len(terms)
        inner = [depth_of(j, (*seen, k)) for j in term_ids(taus[k])]
        depth[k] = 1 + max(inner, default=0)
        return depth[k]

    passes = max((depth_of(k) for k in range(len(terms)) if variable[k]), default=1)
    return variable, steers, passes

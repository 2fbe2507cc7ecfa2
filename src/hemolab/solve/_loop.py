"""The batched adaptive solver loop: Dormand–Prince 5(4), per-patient step control, exact events.

One ``lax.while_loop`` advances a whole chunk of patients. Each iteration, every patient does
exactly one of two things, decided by its own state (no lockstep in *time*, only in
iterations):

* **action** — its next action (sorted table of outputs and events, see
  ``hemolab.events``) is due at its current time: apply it (write an output, add a dose, change
  a parameter, reset...) and advance its action pointer;
* **step** — otherwise take one adaptive DP5 step towards its next *stop* (the next
  non-output action), landing exactly on it. Accepted steps fill the outputs they pass with the
  4th-order dense output.

So events are exact at their times by construction, never found by step-size luck. Positive
states are integrated as ``log(y)``. Delay equations keep a ring buffer of past dense-output
segments per patient (method of steps; see ``_history.py`` and design note 002).

This is a hand-batched loop rather than ``vmap`` of a per-patient ``while_loop``: vmapped
while-loops copy every carried array each iteration and ran 5-13x slower in the P2 prototype
(BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hemolab.compile._compiled import CompiledModel
from hemolab.compile._triggers import CompiledTriggers
from hemolab.events._ops import (
    OP_ADD,
    OP_BOLUS,
    OP_MULTIPLY,
    OP_NOP,
    OP_OFF,
    OP_ON,
    OP_OUTPUT,
    OP_PARAM,
    OP_PHLEBOTOMY,
    OP_RATE,
    OP_RATE_F,
    OP_REPLACE,
    OP_RESET,
)
from hemolab.solve._dopri5 import DOPRI5, Stepper, take_columns
from hemolab.solve._history import History
from hemolab.solve._status import Status

__all__ = ["DELAY_NOT_POSITIVE", "QUEUE_FULL", "ChunkInputs", "ChunkResult", "make_chunk_solver"]

_RUNNING = int(Status.RUNNING)
_NONFINITE = int(Status.NONFINITE)
_IDLE = 99  # a lane without a patient (the call's queue is empty)
QUEUE_FULL = 98  # internal: more trigger firings pending than the queue holds (retried larger)
DELAY_NOT_POSITIVE = 97  # internal: a state-dependent delay fell to 0 (reported as an error)


class ChunkInputs(NamedTuple):
    """Device arrays for one call of M patients (padded to a bucket size; shapes say C=M).

    The loop runs ``lanes`` patients at a time; a lane whose patient finishes takes the next
    patient of the call, so a slow patient never holds up the others (no lockstep waste).
    """

    inputs: jax.Array  # (C, P) parameters then covariates
    # the action table: one row per patient, or one row (1, A) shared by every patient
    act_time: jax.Array  # (C, A) +inf padded
    act_op: jax.Array  # (C, A) int32
    act_target: jax.Array  # (C, A) int32
    act_value: jax.Array  # (C, A)
    act_stop: jax.Array  # (C, A) next non-output action time at/after each index
    t0: jax.Array  # (C,) start time
    y_init: jax.Array  # (C, n) initial state override; NaN entries use the model's initial
    n_valid: jax.Array  # () patients [0, n_valid) are real; the rest is bucket padding
    rtol: jax.Array  # ()
    atol: jax.Array  # ()
    max_steps: jax.Array  # () int32


class ChunkResult(NamedTuple):
    outputs: jax.Array  # (C, T, V) the out_vars (default: states, observables); NaN: unwritten
    status: jax.Array  # (C,) int32 (Status)
    n_steps: jax.Array  # (C,) attempted steps
    n_accepted: jax.Array  # (C,)
    trigger_count: jax.Array  # (C, K) times each trigger fired
    trigger_first: jax.Array  # (C, K) time of its first firing (NaN: never)


def expm_small(a: jax.Array) -> jax.Array:
    """Batched exponential of small matrices ``(C, m, m)``: scaling and squaring around a
    degree-12 Taylor polynomial.

    ``jax.scipy.linalg.expm`` returns NaN for stiff matrices of large norm (e.g. eigenvalues
    -1 and -1e6 over one time unit); here the matrix is scaled to norm <= 1/2, where the
    Taylor remainder is below 1e-16, and squared back, as many times as the largest norm of
    the batch needs.
    """
    m = a.shape[-1]
    norm = jnp.max(jnp.sum(jnp.abs(a), axis=-1), axis=-1)
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / 0.5)), 0, 1000).astype(jnp.int32)
    # batch last, products as broadcast sums: XLA:CPU runs a batched dot of (C, m, m) as C
    # tiny matmuls (4x4, 256 lanes: the whole exponential took 1.04 ms, this layout 0.30 ms)
    scaled = jnp.moveaxis(a / jnp.exp2(s.astype(a.dtype))[:, None, None], 0, -1)
    eye = jnp.eye(m)[:, :, None]

    def mul(x: jax.Array, y: jax.Array) -> jax.Array:
        # summed in a fixed order: a reduction's order could change with the batch size, and
        # a patient's result must not depend on which chunk it was solved in
        out = x[:, 0, None, :] * y[None, 0, :, :]
        for k in range(1, m):
            out = out + x[:, k, None, :] * y[None, k, :, :]
        return out

    e = eye + scaled / 12.0
    for k in range(11, 0, -1):
        e = eye + mul(scaled, e) / k

    def square(i: jax.Array, e: jax.Array) -> jax.Array:
        return jnp.where(i < s, mul(e, e), e)

    return jnp.moveaxis(jax.lax.fori_loop(0, jnp.max(s), square, e), -1, 0)


_RING_KEYS = ("t_start", "h", "u0", "coef")  # the history's per-segment arrays (big)


def _split_ring(c: dict) -> dict:
    """Take the history ring's big per-segment arrays out of the carry ``c`` (in place)."""
    hist = c.get("hist")
    if not hist:
        return {}
    ring = {k: hist[k] for k in _RING_KEYS}
    c["hist"] = {k: v for k, v in hist.items() if k not in _RING_KEYS}
    return ring


def make_chunk_solver(
    cm: CompiledModel,
    *,
    n_outputs: int,
    history_size: int = 0,
    fixed_step: float | None = None,
    stepper: Stepper = DOPRI5,
    triggers: CompiledTriggers | None = None,
    lanes: int = 256,
    closed_form: bool = True,
    queue_size: int = 0,
    ops: frozenset[int] | None = None,
    rate_targets: frozenset[int] | None = None,
    out_vars: tuple[int, ...] | None = None,
) -> Callable[[ChunkInputs], ChunkResult]:
    """Build the (un-jitted) chunk solver of a compiled model for T = ``n_outputs`` slots.

    ``fixed_step`` disables step control (every step of that size is accepted, still landing
    on stops): only for convergence-order tests. ``closed_form`` solves the model's linear
    subsystem (``CompiledModel.linear_states``, typically its PK) exactly between events.

    Triggers go through a per-patient queue of ``queue_size`` pending firings (time, trigger,
    values computed when it became true): a condition turning true enqueues a firing at
    ``t + delay``; due firings act one per iteration, highest priority first (ties: the
    earliest enqueued), and all conditions are evaluated again after each (SBML L3 event
    semantics). A full queue gives the internal status ``QUEUE_FULL``.

    ``ops`` (the operation codes that occur in the action tables; None: any) specialises the
    loop body: only those actions are compiled, and infusion rates or compartments switched
    off cost nothing in the right-hand side when no action can create them. ``rate_targets``
    (the states infusions go into; None: any) spares the solver-coordinate right-hand side
    the ``r/y`` of log states that no infusion reaches.

    ``out_vars`` selects the variables written at each output (indices into the states, then
    the observables; None: all), like libRoadRunner's selections or mrgsolve's ``outvars``.
    When only states are selected (and there are no delays or triggers, which need every
    state's dense output) the steps form dense-output coefficients only for those states.
    """
    n = cm.n_states
    n_obs = len(cm.model.observables)
    sel = tuple(range(n + n_obs)) if out_vars is None else tuple(int(v) for v in out_vars)
    if not sel or min(sel) < 0 or max(sel) >= n + n_obs:
        raise ValueError(f"out_vars {out_vars} must be non-empty indices below {n + n_obs}")
    n_sel = len(sel)
    log_mask = jnp.asarray(cm.log_mask)
    any_log = bool(np.any(cm.log_mask))
    blood_mask = jnp.zeros(n, dtype=bool)
    if cm.model.blood is not None:
        names = cm.model.state_names
        idx = [names.index(s) for s in (*cm.model.blood.cell_states, *cm.model.blood.plasma_states)]
        blood_mask = blood_mask.at[jnp.asarray(idx, dtype=jnp.int32)].set(True)

    rhs_b = jax.vmap(cm.rhs)
    init_b = jax.vmap(lambda p: cm.initial(0.0, jnp.zeros(n), p, jnp.zeros(cm.n_delays)))
    obs_b = jax.vmap(cm.observables)
    f_b = jax.vmap(lambda p: cm.bioavailability(0.0, jnp.zeros(n), p, jnp.zeros(cm.n_delays)))
    bv_b = jax.vmap(cm.blood_volume)
    order = stepper.order
    K = triggers.n if triggers is not None else 0
    g_b = jax.vmap(triggers.g) if triggers is not None else None
    act_b = [jax.vmap(a) for a in triggers.actions] if triggers is not None else []
    scale_b = [jax.vmap(a) for a in triggers.scales] if triggers is not None else []
    initially_true = jnp.asarray(
        triggers.initial_value if triggers is not None and triggers.initial_value else (True,) * K,
        dtype=bool,
    )
    Q = max(int(queue_size), 2 * K, 1) if K else 0
    delay_b = jax.vmap(triggers.delay) if triggers is not None and triggers.delay else None
    prio_b = jax.vmap(triggers.priority) if triggers is not None and triggers.priority else None
    persistent = np.asarray(
        triggers.persistent if triggers is not None and triggers.persistent else (True,) * K,
        dtype=bool,
    )
    any_transient = bool(K) and not bool(np.all(persistent))
    persistent_j = jnp.asarray(persistent)
    n_slots = n + cm.n_inputs
    use_stored = np.zeros((K, n_slots), dtype=bool)
    if triggers is not None and triggers.assigned is not None:
        vat = np.asarray(triggers.values_at_trigger or (True,) * K, dtype=bool)
        use_stored = np.asarray(triggers.assigned, dtype=bool) & vat[:, None]
    use_stored_j = jnp.asarray(use_stored)

    def has(*codes: int) -> bool:
        return ops is None or any(c in ops for c in codes)

    use_rates = has(OP_RATE, OP_RATE_F)  # else every infusion rate stays 0
    # outputs, stops and doses (bolus, add) only: a lighter action branch
    doses_only = ops is not None and ops <= {OP_NOP, OP_OUTPUT, OP_BOLUS, OP_ADD}
    use_off = has(OP_OFF, OP_ON)  # else every compartment stays on
    history = History.for_model(cm, size=history_size, stepper=stepper) if cm.has_delays else None

    def to_y(u: jax.Array) -> jax.Array:
        return jnp.where(log_mask, jnp.exp(u), u) if any_log else u

    lin_idx = np.asarray(cm.linear_states if closed_form else (), dtype=np.int32)
    nL = len(lin_idx)

    lin_tuple = tuple(int(i) for i in lin_idx)

    def lin_cols(a: jax.Array) -> jax.Array:
        """Columns ``lin_idx`` of ``a`` (C, n) as slices (fused), not a gather."""
        return take_columns(a, lin_tuple)

    def lin_place(x: jax.Array, into: jax.Array) -> jax.Array:
        """``into`` (C, n) with columns ``lin_idx`` replaced by ``x`` (C, nL). A scatter: an
        elementwise select would be fused into each column's consumer and recompute the
        closed form's exponentials once per column (measured 15 % slower on P1)."""
        return into.at[:, lin_idx].set(x)

    # states an infusion can reach that the solver integrates, split by coordinates
    rated = (
        np.ones(n, dtype=bool)
        if rate_targets is None
        else np.isin(np.arange(n), list(rate_targets))
    )
    rated &= ~np.isin(np.arange(n), lin_idx)
    rated_log = rated & np.asarray(cm.log_mask, dtype=bool)
    rated_plain = rated & ~np.asarray(cm.log_mask, dtype=bool)
    # the symbolic solver-coordinate RHS treats cm.linear_states as closed-form inputs
    rhs_u_b = (
        jax.vmap(cm.rhs_solver)
        if cm.rhs_solver is not None and history is None and (closed_form or not cm.linear_states)
        else None
    )
    err_w = np.ones(n)
    if nL:
        err_w[lin_idx] = 0.0  # exact states carry no truncation error
        kmat_b = jax.vmap(lambda p: cm.linear_matrix(0.0, jnp.zeros(n), p, jnp.zeros(0)))  # type: ignore[misc]

        def propagate(
            x0: jax.Array, rl: jax.Array, tau: jax.Array, p: jax.Array, on: jax.Array
        ) -> jax.Array:
            """Exact ``x(tau)`` of ``x' = K x + r`` from ``x0`` (constant infusion rates);
            compartments that are off (``on`` False) do not change."""
            km = kmat_b(p).reshape(-1, nL, nL) * on[:, :, None]
            if nL == 1:
                k, z = km[:, 0, 0], km[:, 0, 0] * tau
                if not use_rates:  # no infusion can occur: rl is 0
                    return (x0[:, 0] * jnp.exp(z))[:, None]
                small = jnp.abs(z) < 1e-8
                phi = jnp.where(small, tau * (1 + 0.5 * z), jnp.expm1(z) / jnp.where(small, 1.0, k))
                return (x0[:, 0] * jnp.exp(z) + rl[:, 0] * phi)[:, None]
            aug = jnp.zeros((x0.shape[0], nL + 1, nL + 1))
            aug = aug.at[:, :nL, :nL].set(km * tau[:, None, None])
            aug = aug.at[:, :nL, nL].set(rl * tau[:, None])
            e = expm_small(aug)
            return jnp.einsum("sij,sj->si", e[:, :nL, :nL], x0) + e[:, :nL, nL]

    # dense output of selected states only: their integrated columns and closed-form ones
    dense_cols: tuple[int, ...] | None = None
    lin_set = {int(i) for i in lin_idx}
    if out_vars is not None and max(sel) < n and history is None and triggers is None:
        dense_cols = tuple(sorted({v for v in sel if v not in lin_set}))
    dense_log = np.asarray(cm.log_mask, dtype=bool)[list(dense_cols or ())]

    def to_u(y: jax.Array) -> jax.Array:
        if not any_log:
            return y
        safe = jnp.where(log_mask, jnp.where(y > 0, y, jnp.nan), 1.0)
        return jnp.where(log_mask, jnp.log(safe), y)

    def solve(ci: ChunkInputs) -> ChunkResult:
        M = ci.inputs.shape[0]
        C = min(lanes, M)
        rtol, atol = ci.rtol, ci.atol
        # the action table packed once per call: one gather reads a lane's whole action
        n_act = ci.act_time.shape[1]
        per_patient = ci.act_time.shape[0] > 1  # one table row per patient, else one shared
        act = jnp.stack(
            [
                ci.act_time,
                ci.act_op.astype(jnp.float64),
                ci.act_target.astype(jnp.float64),
                ci.act_value,
                ci.act_stop,
            ],
            axis=-1,
        )

        def delayed_values(hs: Any, t: jax.Array, p: jax.Array, y: jax.Array) -> jax.Array:
            if history is None:
                return jnp.zeros((C, 0))
            return history.lookup(hs, t, p, y)

        def ystate(t: jax.Array, u: jax.Array, p: jax.Array, r: jax.Array, lin: Any) -> jax.Array:
            """Natural-coordinate states at ``t``; linear states from their closed form."""
            y = to_y(u)
            if nL:
                xk, tk, on = lin
                y = lin_place(propagate(xk, lin_cols(r), t - tk, p, lin_cols(on)), y)
            return y

        def f(
            hs: Any, t: jax.Array, u: jax.Array, p: jax.Array, r: jax.Array, lin: Any
        ) -> jax.Array:
            if rhs_u_b is not None:  # du/dt written in solver coordinates (_logspace)
                w = u
                if nL:
                    xk, tk, on = lin
                    xl = propagate(xk, lin_cols(r), t - tk, p, lin_cols(on))
                    w = jnp.concatenate([u, xl], axis=1)
                # materialised first: fused into the RHS, the stage sums were contracted
                # (FMA) differently per lane count and broke bitwise chunk independence
                # (measured 3e-13 relative with infusions)
                w = jax.lax.optimization_barrier(w)
                du = rhs_u_b(t, w, p, jnp.zeros((C, 0)))
                if use_rates and rated_log.any():  # an infusion into a log state adds r/y
                    du = du + jnp.where(jnp.asarray(rated_log), r * jnp.exp(-u), 0.0)
                if use_rates and rated_plain.any():  # ... into a plain one r; linear: exact
                    du = du + jnp.where(jnp.asarray(rated_plain), r, 0.0)
                if use_off:
                    du = jnp.where(lin[2], du, 0.0)
                return du
            y = ystate(t, u, p, r, lin)
            dy = rhs_b(t, y, p, delayed_values(hs, t, p, y))
            if use_rates:
                dy = dy + r
            if use_off:
                dy = jnp.where(lin[2], dy, 0.0)
            if nL:  # a scatter: a select here let XLA fuse differently per lane count and
                # broke bitwise equality between chunkings (measured: 9e-15 relative)
                dy = dy.at[:, lin_idx].set(0.0)
            return jnp.where(log_mask, dy / y, dy) if any_log else dy

        def scale(u0: jax.Array, u1: jax.Array) -> jax.Array:
            sc = atol + rtol * jnp.maximum(jnp.abs(u0), jnp.abs(u1))
            # log states: an absolute error in log(y) is a relative error in y
            return jnp.where(log_mask, rtol + atol, sc) if any_log else sc

        w = jnp.asarray(err_w)

        def rms(x: jax.Array) -> jax.Array:
            return jnp.sqrt(jnp.sum(x * x * w, axis=-1) / max(float(err_w.sum()), 1.0))

        def initial_step(hs: Any, t, u, p, r, k1, room, lin):
            """Hairer's starting step (Solving ODEs I, II.4), capped by the room to the stop."""
            sc = scale(u, u)
            d0, d1 = rms(u / sc), rms(k1 / sc)
            h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
            h0 = jnp.minimum(h0, room)
            h0 = jnp.maximum(h0, 1e-10)
            k2 = f(hs, t + h0, u + h0[:, None] * k1, p, r, lin)
            d2 = rms((k2 - k1) / sc) / h0
            dm = jnp.maximum(d1, d2)
            h1 = jnp.where(
                dm <= 1e-15,
                jnp.maximum(1e-6, h0 * 1e-3),
                jnp.exp(jnp.log(0.01 / jnp.maximum(dm, 1e-300)) / order),
            )
            return jnp.minimum(100 * h0, h1)

        def gfun(
            hs: Any, t: jax.Array, u: jax.Array, p: jax.Array, r: jax.Array, lin: Any
        ) -> jax.Array:
            """Trigger conditions (C, K): > 0 where the condition holds; then the signed
            distances of their comparisons (C, n_roots)."""
            if g_b is None:
                return jnp.zeros((C, 0))
            y = ystate(t, u, p, r, lin)
            return g_b(t, y, p, delayed_values(hs, t, p, y))

        def observe(hs: Any, t: jax.Array, y: jax.Array, p: jax.Array) -> jax.Array:
            """The selected variables (``out_vars``) at ``t`` from the states ``y``."""
            if n_obs == 0 or max(sel) < n:
                return take_columns(y, sel)
            full = jnp.concatenate([y, obs_b(t, y, p, delayed_values(hs, t, p, y))], axis=1)
            return take_columns(full, sel)

        def observe_dense(
            hs: Any,
            tq: jax.Array,
            th: jax.Array,
            u: jax.Array,
            h: jax.Array,
            coef: jax.Array,
            p: jax.Array,
            r: jax.Array,
            lin: Any,
        ) -> jax.Array:
            """The selected variables at ``tq`` inside an accepted step (dense output)."""
            if dense_cols is None:
                uq = stepper.dense(u, h, coef, th)
                return observe(hs, tq, ystate(tq, uq, p, r, lin), p)
            cols: dict[int, jax.Array] = {}
            if dense_cols:
                uq = stepper.dense(take_columns(u, dense_cols), h, coef, th)
                yq = jnp.where(jnp.asarray(dense_log), jnp.exp(uq), uq) if dense_log.any() else uq
                cols.update({v: yq[:, i : i + 1] for i, v in enumerate(dense_cols)})
            if any(v in lin_set for v in sel):
                xk, tk, on = lin
                xl = propagate(xk, lin_cols(r), tq - tk, p, lin_cols(on))
                cols.update({int(v): xl[:, i : i + 1] for i, v in enumerate(lin_idx)})
            return jnp.concatenate([cols[v] for v in sel], axis=1)

        def load(pid: jax.Array) -> dict[str, Any]:
            """Fresh lane state for patients ``pid`` (C,); pid >= n_valid gives an idle lane."""
            valid = pid < ci.n_valid
            pc = jnp.clip(pid, 0, M - 1)
            p = ci.inputs[pc]
            t0 = ci.t0[pc].astype(jnp.float64)
            y_init = ci.y_init[pc]
            u0 = to_u(jnp.where(jnp.isnan(y_init), init_b(p), y_init))
            hist0 = history.init_lanes(p, t0) if history is not None else None
            status = jnp.where(jnp.all(jnp.isfinite(u0), axis=1), _RUNNING, _NONFINITE)
            return dict(
                pid=jnp.where(valid, pid, M).astype(jnp.int32),
                t=t0,
                h=jnp.zeros(C),
                u=u0,
                k1=jnp.zeros((C, n)),
                r=jnp.zeros((C, n)),
                p=p,
                ptr=jnp.zeros(C, dtype=jnp.int32),
                status=jnp.where(valid, status, _IDLE).astype(jnp.int32),
                n_steps=jnp.zeros(C, dtype=jnp.int32),
                n_acc=jnp.zeros(C, dtype=jnp.int32),
                fresh=jnp.ones(C, dtype=bool),  # k1 and h must be (re)computed
                hist=hist0,
                xk=lin_cols(to_y(u0)),  # linear states at their anchor time
                tk=t0,
                on=jnp.ones((C, n), dtype=bool),  # compartments not turned off (negative CMT)
                # a condition true at the start fires there unless it counts as already true
                # before the start (Trigger.initial_value, SBML's initialValue)
                g_prev=jnp.where(
                    initially_true[None, :],
                    gfun(
                        hist0,
                        t0,
                        u0,
                        p,
                        jnp.zeros((C, n)),
                        (lin_cols(to_y(u0)), t0, jnp.ones((C, n), dtype=bool)),
                    )[:, :K],
                    -1.0,
                ),
                n_fired=jnp.zeros((C, K), dtype=jnp.int32),
                first_fired=jnp.full((C, K), jnp.nan),
                q_t=jnp.full((C, Q), jnp.inf),  # pending trigger firings (inf: free slot)
                q_k=jnp.zeros((C, Q), dtype=jnp.int32),
                q_v=jnp.zeros((C, Q, n_slots)),
                q_seq=jnp.zeros((C, Q), dtype=jnp.int32),
                seq=jnp.zeros(C, dtype=jnp.int32),
            )

        # rows past the output array, one per lane: lanes that write nothing this time scatter
        # there (dropped) and the indices stay unique
        lane_oob = M + jnp.arange(C, dtype=jnp.int32)
        carry: dict[str, Any] = load(jnp.arange(C, dtype=jnp.int32))
        carry.update(
            out=jnp.full((M, n_outputs, n_sel), jnp.nan),
            next=jnp.asarray(C, dtype=jnp.int32),
            g_status=jnp.full(M, _IDLE, dtype=jnp.int32),
            g_steps=jnp.zeros(M, dtype=jnp.int32),
            g_acc=jnp.zeros(M, dtype=jnp.int32),
            g_fired=jnp.zeros((M, K), dtype=jnp.int32),
            g_first=jnp.full((M, K), jnp.nan),
        )
        lane_keys = tuple(k for k in load(jnp.zeros(C, dtype=jnp.int32)) if k != "hist")

        def refill(c: dict) -> dict:
            """Flush finished lanes into the call's results and load the next patients."""
            c = dict(c)
            done = (c["status"] != _RUNNING) & (c["status"] != _IDLE)
            w = jnp.where(done, c["pid"], M)
            for g, lane in (
                ("g_status", "status"),
                ("g_steps", "n_steps"),
                ("g_acc", "n_acc"),
                ("g_fired", "n_fired"),
                ("g_first", "first_fired"),
            ):
                c[g] = c[g].at[w].set(c[lane], mode="drop")
            rank = (jnp.cumsum(done.astype(jnp.int32)) - 1).astype(jnp.int32)
            cand = c["next"] + rank
            new_pid = jnp.where(cand < ci.n_valid, cand, M).astype(jnp.int32)
            c["next"] = jnp.minimum(c["next"] + jnp.sum(done.astype(jnp.int32)), ci.n_valid).astype(
                jnp.int32
            )
            fresh_lanes = load(jnp.where(done, new_pid, 0))
            for k in lane_keys:
                mask = done.reshape((C,) + (1,) * (c[k].ndim - 1))
                c[k] = jnp.where(mask, fresh_lanes[k], c[k])
            if history is not None:
                c["hist"] = history.merge(done, fresh_lanes["hist"], c["hist"])
            return c

        def cond(c: dict) -> jax.Array:
            return jnp.any(c["status"] == _RUNNING) | (c["next"] < ci.n_valid)

        def body(c: dict) -> dict:
            # big arrays never pass through a branch (a cond may copy its outputs): the
            # outputs and the history ring's segments stay outside; branches see small state
            big = c.pop("out")
            ring = _split_ring(c)
            c = jax.lax.cond(
                jnp.any((c["status"] != _RUNNING) & (c["status"] != _IDLE)),
                refill,
                lambda c: c,
                c,
            )
            c["out"] = big
            if history is not None:
                c["hist"] = {**ring, **c["hist"]}
            pidc = jnp.clip(c["pid"], 0, M - 1)
            pidw = c["pid"]  # M for idle lanes: their writes are dropped

            def take_act(ptr: jax.Array) -> jax.Array:
                """Each lane's action at ``ptr``: (C, 5) time, op, target, value, stop."""
                return act[pidc if per_patient else 0, jnp.clip(ptr, 0, n_act - 1)]

            t, u, p, r, ptr, status = c["t"], c["u"], c["p"], c["r"], c["ptr"], c["status"]
            xk, tk, on = c["xk"], c["tk"], c["on"]
            running = status == _RUNNING
            cur = take_act(ptr)
            ta, val = cur[:, 0], cur[:, 3]
            op, tgt = cur[:, 1].astype(jnp.int32), cur[:, 2].astype(jnp.int32)
            finished = running & jnp.isinf(ta)
            status = jnp.where(finished, int(Status.OK), status)
            running = running & ~finished
            g_prev, n_fired, first_fired = c["g_prev"], c["n_fired"], c["first_fired"]
            fresh = c["fresh"]
            firing = jnp.zeros(C, dtype=bool)
            q_t, q_k, q_v, q_seq = c["q_t"], c["q_k"], c["q_v"], c["q_seq"]
            g_all = jnp.zeros((C, 0))
            if K:
                # -------- state triggers: conditions turning true enqueue a firing ----------
                hist0 = c["hist"]
                g_all = gfun(hist0, t, u, p, r, (xk, tk, on))  # conditions, then comparisons
                g_now = g_all[:, :K]
                rising = running[:, None] & (g_prev <= 0) & (g_now > 0)
                g_prev = jnp.where(running[:, None], g_now, g_prev)
                if any_transient:  # non-persistent: cancelled when the condition turns false
                    false_now = jnp.take_along_axis(g_now, q_k, axis=1) <= 0
                    drop = running[:, None] & ~persistent_j[q_k] & false_now
                    q_t = jnp.where(drop, jnp.inf, q_t)

                def enqueue(a):
                    q_t, q_k, q_v, q_seq, seq, status = a
                    y = to_y(u)
                    z = delayed_values(hist0, t, p, y)
                    vals = jnp.stack([act(t, y, p, z) for act in act_b], axis=1)
                    d = delay_b(t, y, p, z) if delay_b is not None else jnp.zeros((C, K))
                    for k in range(K):
                        free = jnp.isinf(q_t)
                        slot = jnp.argmax(free, axis=1)
                        ok_d = jnp.isfinite(d[:, k]) & (d[:, k] >= 0)
                        ins = rising[:, k] & jnp.any(free, axis=1) & ok_d
                        oh = (jnp.arange(Q)[None, :] == slot[:, None]) & ins[:, None]
                        q_t = jnp.where(oh, (t + d[:, k])[:, None], q_t)
                        q_k = jnp.where(oh, k, q_k)
                        q_v = jnp.where(oh[:, :, None], vals[:, k][:, None, :], q_v)
                        q_seq = jnp.where(oh, seq[:, None], q_seq)
                        seq = seq + ins.astype(jnp.int32)
                        status = jnp.where(rising[:, k] & ~ok_d, _NONFINITE, status)
                        status = jnp.where(
                            rising[:, k] & ok_d & ~jnp.any(free, axis=1), QUEUE_FULL, status
                        )
                    return q_t, q_k, q_v, q_seq, seq, status

                q_t, q_k, q_v, q_seq, seq, status = jax.lax.cond(
                    jnp.any(rising),
                    enqueue,
                    lambda a: a,
                    (q_t, q_k, q_v, q_seq, c["seq"], status),
                )
                running = running & (status == _RUNNING)
                due = running[:, None] & (q_t <= t[:, None])
                firing = jnp.any(due, axis=1)

                def fire(a):
                    u, p, q_t, n_fired, first_fired, status = a
                    y = to_y(u)
                    z = delayed_values(hist0, t, p, y)
                    if prio_b is not None:
                        pr = jnp.take_along_axis(prio_b(t, y, p, z), q_k, axis=1)
                        pr = jnp.where(jnp.isnan(pr), -jnp.inf, pr)
                    else:
                        pr = jnp.zeros((C, Q))
                    pr = jnp.where(due, pr, -jnp.inf)
                    best = jnp.max(pr, axis=1)
                    cand = due & (pr == best[:, None])
                    j = jnp.argmin(jnp.where(cand, q_seq, jnp.iinfo(jnp.int32).max), axis=1)
                    kstar = jnp.take_along_axis(q_k, j[:, None], axis=1)[:, 0]
                    stored = q_v[jnp.arange(C), j]
                    now = jnp.select(
                        [(kstar == k)[:, None] for k in range(K)],
                        [act(t, y, p, z) for act in act_b],
                    )
                    new = jnp.where(use_stored_j[kstar], stored, now)
                    if scale_b:  # factors taken when the trigger acts (SBML concentrations)
                        new = new * jnp.select(
                            [(kstar == k)[:, None] for k in range(K)],
                            [sc(t, y, p, z) for sc in scale_b],
                        )
                    y_new, p_new = new[:, :n], new[:, n:]
                    u_new = jnp.where(y_new == y, u, to_u(y_new))
                    bad = firing & ~jnp.all(jnp.isfinite(u_new), axis=1)
                    onehot = (jnp.arange(K)[None, :] == kstar[:, None]) & firing[:, None]
                    done = (jnp.arange(Q)[None, :] == j[:, None]) & firing[:, None]
                    return (
                        jnp.where(firing[:, None], u_new, u),
                        jnp.where(firing[:, None], p_new, p),
                        jnp.where(done, jnp.inf, q_t),
                        n_fired + onehot.astype(jnp.int32),
                        jnp.where(onehot & jnp.isnan(first_fired), t[:, None], first_fired),
                        jnp.where(bad, int(Status.NONFINITE), status),
                    )

                u, p, q_t, n_fired, first_fired, status = jax.lax.cond(
                    jnp.any(firing),
                    fire,
                    lambda a: a,
                    (u, p, q_t, n_fired, first_fired, status),
                )
                fresh = fresh | firing
                if nL:  # re-anchor the closed form where a trigger changed states or inputs
                    xk = jnp.where(firing[:, None], lin_cols(to_y(u)), xk)
                    tk = jnp.where(firing, t, tk)
            else:
                seq = c["seq"]
            at_action = running & ~firing & (ta <= t)
            stepping = running & ~firing & ~at_action

            # ---------------- actions (skipped entirely when no patient has one due) --------
            def apply_actions(a):
                u, r, p, status, hist, fresh, ptr, on = a
                if history is not None:
                    hist = {**ring, **hist}
                y = to_y(u)
                e = jnp.arange(n)[None, :] == tgt[:, None]
                v = val[:, None]
                f_t = jnp.ones((C, 1))
                if has(OP_BOLUS, OP_RATE_F):
                    f_t = jnp.take_along_axis(f_b(p), jnp.clip(tgt, 0, n - 1)[:, None], axis=1)
                # only the operations that occur in the tables are compiled (``ops``)
                cases = [
                    (OP_BOLUS, lambda: jnp.where(e, y + v * f_t, y)),
                    (OP_ADD, lambda: jnp.where(e, y + v, y)),
                    (OP_REPLACE, lambda: jnp.where(e, v, y)),
                    (OP_MULTIPLY, lambda: jnp.where(e, y * v, y)),
                    (OP_RESET, lambda: init_b(p)),
                    (
                        OP_PHLEBOTOMY,
                        lambda: jnp.where(
                            blood_mask[None, :],
                            y * (1.0 - v / bv_b(t, y, p, delayed_values(hist, t, p, y))),
                            y,
                        ),
                    ),
                    (OP_OFF, lambda: jnp.where(e, 0.0, y)),
                ]
                present = [(code, make) for code, make in cases if has(code)]
                y_new = (
                    jnp.select(
                        [(op == code)[:, None] for code, _ in present],
                        [make() for _, make in present],
                        y,
                    )
                    if present
                    else y
                )
                if use_off:  # a dose into a compartment that is off turns it on (NONMEM)
                    dosing = (op == OP_BOLUS) | (op == OP_ADD) | (op == OP_RATE) | (op == OP_RATE_F)
                    on_new = jnp.where(((op == OP_ON) | dosing)[:, None] & e, True, on)
                    on_new = jnp.where((op == OP_OFF)[:, None] & e, False, on_new)
                    on_new = jnp.where((op == OP_RESET)[:, None], True, on_new)
                    on = jnp.where(at_action[:, None], on_new, on)
                if use_rates:
                    r_new = jnp.select(
                        [
                            (op == OP_RATE)[:, None],
                            (op == OP_RATE_F)[:, None],
                            (op == OP_RESET)[:, None],
                        ],
                        [jnp.where(e, r + v, r), jnp.where(e, r + v * f_t, r), jnp.zeros_like(r)],
                        r,
                    )
                    r = jnp.where(at_action[:, None], r_new, r)
                if has(OP_PARAM):
                    pe = jnp.arange(p.shape[1])[None, :] == tgt[:, None]
                    p_new = jnp.where((op == OP_PARAM)[:, None] & pe, v, p)
                    p = jnp.where(at_action[:, None], p_new, p)
                changed = jnp.any(y_new != y, axis=1) | (op == OP_RESET) | (op == OP_OFF)
                u_act = jnp.where(y_new == y, u, to_u(y_new))
                act_fail = at_action & changed & ~jnp.all(jnp.isfinite(u_act), axis=1)
                refresh = at_action & (op != OP_OUTPUT)
                u = jnp.where(at_action[:, None], u_act, u)
                status = jnp.where(act_fail, int(Status.NONFINITE), status)
                if history is not None:
                    if has(OP_RESET):
                        hist = history.on_reset(hist, at_action & (op == OP_RESET), t, p)
                    hist = {k: v for k, v in hist.items() if k not in ring}
                fresh = fresh | refresh
                ptr = ptr + at_action.astype(jnp.int32)
                return u, r, p, status, hist, fresh, ptr, on

            def apply_doses(a):
                """``apply_actions`` for tables of outputs, stops and doses only: a dose
                changes one state, so only its column is exponentiated and logged again
                (the whole state was, at 9 of 10 iterations for 256 lanes: 10 % of P1)."""
                u, r, p, status, hist, fresh, ptr, on = a
                col = jnp.clip(tgt, 0, n - 1)
                u_t = jnp.take_along_axis(u, col[:, None], axis=1)[:, 0]
                is_log = log_mask[col]
                y_t = jnp.where(is_log, jnp.exp(u_t), u_t) if any_log else u_t
                y_new = y_t
                if has(OP_BOLUS):
                    f_t = jnp.take_along_axis(f_b(p), col[:, None], axis=1)[:, 0]
                    y_new = jnp.where(op == OP_BOLUS, y_t + val * f_t, y_new)
                if has(OP_ADD):
                    y_new = jnp.where(op == OP_ADD, y_t + val, y_new)
                changed = at_action & (y_new != y_t)
                safe = jnp.where(y_new > 0, y_new, jnp.nan)
                u_new = jnp.where(is_log, jnp.log(safe), y_new) if any_log else y_new
                status = jnp.where(changed & ~jnp.isfinite(u_new), int(Status.NONFINITE), status)
                into = changed[:, None] & (jnp.arange(n)[None, :] == col[:, None])
                u = jnp.where(into, u_new[:, None], u)
                fresh = fresh | (at_action & (op != OP_OUTPUT))
                ptr = ptr + at_action.astype(jnp.int32)
                return u, r, p, status, hist, fresh, ptr, on

            # outputs due now are written from the exact current state, outside the cond: the
            # (patients x slots x variables) array must never be copied through a branch
            do_out = at_action & (op == OP_OUTPUT)
            slot = jnp.clip(tgt, 0, n_outputs - 1)
            out = c["out"]
            hist = c["hist"]

            def write_now(out):
                obs_now = observe(hist, t, to_y(u), p)
                rows = jnp.where(do_out, pidw, lane_oob)
                return out.at[rows, slot].set(obs_now, unique_indices=True, mode="drop")

            out = jax.lax.cond(jnp.any(do_out), write_now, lambda o: o, out)
            small = {k: v for k, v in hist.items() if k not in ring} if ring else hist
            u, r, p, status, small, fresh, ptr, on = jax.lax.cond(
                jnp.any(at_action),
                apply_doses if doses_only else apply_actions,
                lambda a: a,
                (u, r, p, status, small, fresh, ptr, on),
            )
            if history is not None:
                hist = {**ring, **small}
            if nL:  # every action re-anchors the closed form (new state, rates or inputs)
                xk = jnp.where(at_action[:, None], lin_cols(to_y(u)), xk)
                tk = jnp.where(at_action, t, tk)
            lin = (xk, tk, on)

            # ---------------- steps ---------------------------------------------------------
            nxt = take_act(ptr)  # the pointer moved where an action was applied
            stop = nxt[:, 4]
            if K:  # steps land on the next pending trigger firing
                stop = jnp.minimum(stop, jnp.min(q_t, axis=1))
            room = stop - t
            need = stepping & fresh

            def restart(args):
                k1, h = args
                k1n = f(hist, t, u, p, r, lin)
                hn = initial_step(hist, t, u, p, r, k1n, jnp.maximum(room, 1e-300), lin)
                hn = jax.lax.stop_gradient(hn)  # the step sequence is not differentiated
                return (
                    jnp.where(need[:, None], k1n, k1),
                    jnp.where(need, hn, h),
                )

            k1, h = jax.lax.cond(jnp.any(need), restart, lambda a: a, (c["k1"], c["h"]))
            if fixed_step is not None:
                h = jnp.full_like(h, fixed_step)
            taus_now = None
            if history is not None:
                if history.any_variable:  # state-dependent delays: their lengths now
                    taus_now = history.current_taus(hist, t, ystate(t, u, p, r, lin), p)
                    bad = stepping & history.bad_delay(taus_now)
                    status = jnp.where(bad, DELAY_NOT_POSITIVE, status)
                    stepping = stepping & ~bad
                h = jnp.minimum(h, history.max_step(hist, p, taus_now))
            fresh = fresh & ~stepping
            land = h >= room
            h_eff = jnp.where(land, room, h)
            h_eff = jnp.where(stepping, h_eff, 1.0)  # keep idle patients' arithmetic finite
            st = stepper.step(
                lambda tt, uu: f(hist, tt, uu, p, r, lin), t, u, h_eff, k1, cols=dense_cols
            )
            u_new, err_vec, coef = st.u_new, st.err, st.coef
            err = jax.lax.stop_gradient(rms(err_vec / scale(u, u_new)))
            ok = jnp.isfinite(err) & jnp.all(jnp.isfinite(u_new), axis=1)
            accept = stepping & ok & (err <= 1.0 if fixed_step is None else True)
            # step-size controller (exp/log instead of pow)
            fac = jnp.where(
                ok,
                0.9 * jnp.exp(-jnp.log(jnp.maximum(err, 1e-10)) / order),
                0.2,
            )
            fac = jnp.clip(fac, 0.2, jnp.where(accept, 10.0, 1.0))
            h_next = h_eff * fac
            t_new = jnp.where(land, stop, t + h_eff)
            truncated = jnp.zeros(C, dtype=bool)
            if K:
                # a condition or one of its comparisons changing sign inside the step: cut the
                # step at the first change, located by bisection on the dense output (a
                # condition turning true fires next iteration)
                pos0 = g_all > 0
                g_end = gfun(hist, t_new, u_new, p, r, lin)
                changed = accept[:, None] & (pos0 != (g_end > 0))
                truncated = jnp.any(changed, axis=1)

                def locate(a):
                    t_new, u_new = a

                    def bisect(_, lh):
                        lo, hi = lh
                        mid = 0.5 * (lo + hi)
                        um = stepper.dense(u, h_eff, coef, mid)
                        gm = gfun(hist, t + mid * h_eff, um, p, r, lin) > 0
                        up = jnp.any(changed & (gm != pos0), axis=1)
                        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

                    _, th = jax.lax.fori_loop(0, 60, bisect, (jnp.zeros(C), jnp.ones(C)))
                    th = jnp.where(truncated, th, 1.0)
                    u_root = stepper.dense(u, h_eff, coef, th)
                    return (
                        jnp.where(truncated, t + th * h_eff, t_new),
                        jnp.where(truncated[:, None], u_root, u_new),
                    )

                t_new, u_new = jax.lax.cond(jnp.any(truncated), locate, lambda a: a, (t_new, u_new))

            if nL:  # the linear states take their exact value at the step's end
                exact = propagate(xk, lin_cols(r), t_new - tk, p, lin_cols(on))
                u_new = lin_place(exact, u_new)

            # dense output for outputs strictly inside (t, t_new)
            if history is not None:
                hist = history.append(hist, accept, t, h_eff, u, coef, p, taus_now)

            def dense_writes(aq: jax.Array) -> jax.Array:
                return accept & (aq[:, 1] == OP_OUTPUT) & (aq[:, 0] < t_new)

            def dense_cond(dc):
                return jnp.any(dense_writes(dc[2]))

            def dense_body(dc):
                dptr, dout, aq = dc
                tq = aq[:, 0]
                sq = jnp.clip(aq[:, 2].astype(jnp.int32), 0, n_outputs - 1)
                write = dense_writes(aq)
                th = jnp.clip((tq - t) / h_eff, 0.0, 1.0)
                vals = observe_dense(hist, tq, th, u, h_eff, coef, p, r, lin)
                rows = jnp.where(write, pidw, lane_oob)
                dout = dout.at[rows, sq].set(vals, unique_indices=True, mode="drop")
                dptr = dptr + write.astype(jnp.int32)
                return dptr, dout, take_act(dptr)

            ptr, out, _ = jax.lax.while_loop(dense_cond, dense_body, (ptr, out, nxt))

            t = jnp.where(accept, t_new, t)
            u = jnp.where(accept[:, None], u_new, u)
            if history is not None:  # the delays' next queries start from here
                hist = history.advance(hist, t, p, to_y(u))
            if nL:  # re-anchor at the step's end: the closed form then spans one step at most
                xk = jnp.where(accept[:, None], lin_cols(u_new), xk)
                tk = jnp.where(accept, t_new, tk)
            k1 = jnp.where(accept[:, None], st.f_new, k1)
            fresh = fresh | (accept & truncated)
            h = jnp.where(stepping, h_next, h)
            n_steps = c["n_steps"] + stepping.astype(jnp.int32)
            n_acc = c["n_acc"] + accept.astype(jnp.int32)
            tiny = stepping & (h_next < 1e-14 * jnp.maximum(jnp.abs(t), 1.0))
            status = jnp.where(tiny, int(Status.STEP_TOO_SMALL), status)
            status = jnp.where(
                stepping & (n_steps >= ci.max_steps) & (status == _RUNNING),
                int(Status.MAX_STEPS),
                status,
            )
            if history is not None:
                status = jnp.where(
                    (status == _RUNNING) & history.overflowed(hist),
                    int(Status.HISTORY_OVERFLOW),
                    status,
                )
            return dict(
                c,
                xk=xk,
                tk=tk,
                on=on,
                t=t,
                h=h,
                u=u,
                k1=k1,
                r=r,
                p=p,
                ptr=ptr,
                status=status,
                n_steps=n_steps,
                n_acc=n_acc,
                fresh=fresh,
                out=out,
                hist=hist,
                g_prev=g_prev,
                n_fired=n_fired,
                first_fired=first_fired,
                q_t=q_t,
                q_k=q_k,
                q_v=q_v,
                q_seq=q_seq,
                seq=seq,
            )

        final: dict[str, Any] = jax.lax.while_loop(cond, body, carry)
        big = final.pop("out")
        final = refill(final)  # flush the last lanes
        final["out"] = big
        return ChunkResult(
            final["out"],
            final["g_status"],
            final["g_steps"],
            final["g_acc"],
            final["g_fired"],
            final["g_first"],
        )

    return solve

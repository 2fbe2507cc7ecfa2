"""Chunked, compiled execution of action tables: the stateful driver over the numerical core.

Patients are solved in chunks of a fixed bucket size and the action/output tables are padded
to power-of-two buckets, so XLA compiles once per (model, chunk, buckets) and a new
population size N never triggers a recompilation.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hemolab._errors import SolveError
from hemolab.compile._compiled import CompiledModel, model_hash
from hemolab.compile._triggers import CompiledTriggers
from hemolab.events._ops import (
    OP_ADD,
    OP_BOLUS,
    OP_MULTIPLY,
    OP_NOP,
    OP_OUTPUT,
    OP_RATE,
    OP_RATE_F,
    OP_REPLACE,
    OP_RESET,
)
from hemolab.solve._dopri5 import DOPRI5, Stepper
from hemolab.solve._loop import (
    DELAY_NOT_POSITIVE,
    QUEUE_FULL,
    ChunkInputs,
    ChunkResult,
    make_chunk_solver,
)
from hemolab.solve._status import Status

__all__ = ["ActionTable", "RawSolution", "make_solve_fn", "run_actions"]

_CALL_BUCKETS = (4, 16, 64, 256, 1024, 4096)
_CALL_SIZE = 4096  # patients per compiled call (memory: outputs of one call live on device)


@dataclass(frozen=True)
class ActionTable:
    """Per-subject action tables (NumPy, host side), already sorted within each row."""

    time: np.ndarray  # (S, A) float64, +inf padded
    op: np.ndarray  # (S, A) int32
    target: np.ndarray  # (S, A) int32
    value: np.ndarray  # (S, A) float64
    n_outputs: int  # T: output slots used by OP_OUTPUT targets

    @property
    def n_subjects(self) -> int:
        return int(self.time.shape[0])


@dataclass(frozen=True)
class RawSolution:
    """Solver output before it becomes a result table."""

    values: np.ndarray  # (N, T, n_states + n_observables)
    status: np.ndarray  # (N,) int32
    n_steps: np.ndarray  # (N,)
    n_accepted: np.ndarray  # (N,)
    trigger_count: np.ndarray  # (N, K)
    trigger_first: np.ndarray  # (N, K) first firing time, NaN if never


def _pow2(x: int, minimum: int) -> int:
    return max(minimum, 1 << max(0, int(x - 1).bit_length()))


def _call_size(n: int) -> int:
    """Bucketed number of patients per compiled call (padding patients are idle lanes)."""
    for b in _CALL_BUCKETS:
        if n <= b:
            return b
    return _CALL_SIZE


# Solver loops by what they compute (_loop_key): the generated code of models whose loops are
# interchangeable, else the model's hash; a model built again (another Model object, the next
# test) finds its loop compiled
_JIT_BY_CODE: dict[str, dict] = {}

# Action tables made only of these operations get the lean loop body (design note 011).
_SIMPLE_OPS = frozenset({OP_NOP, OP_OUTPUT, OP_BOLUS, OP_ADD})
# Delay history ring: start small (every segment slot is carried, appended to and searched at
# each step: P2 took 1.00 s with 1024 slots, 0.41 s with 32) and grow 16x for the patients
# that overflow it (always checked), up to _RING_MAX; a model remembers the size that
# sufficed. Each size is a compilation of its own: colijn_mackey needs 1,024 and compiled
# 64, 256 and 1,024 at 30 s each when the ring grew 4x (it now declares
# Model.history_segments=1024 and compiles once).
_RING_START = 64
_RING_GROWTH = 16
_RING_MAX = 65_536
_MIN_SHARDED = 128  # patients from which a call is split over the host devices
_MAX_GROWTHS = 5
_RING_HINTS: weakref.WeakKeyDictionary[CompiledModel, int] = weakref.WeakKeyDictionary()
# ... and by model hash, for a model compiled again in the same process (another Model
# object, another output width): colijn_mackey's first run compiled its loop for 64, 256 and
# 1,024 segments, 30 s each
_RING_HINTS_BY_HASH: dict[str, int] = {}


def _compiled_solver(
    cm: CompiledModel,
    T: int,
    history_size: int,
    fixed_step: float | None = None,
    stepper: Stepper = DOPRI5,
    triggers: CompiledTriggers | None = None,
    lanes: int = 256,
    closed_form: bool = True,
    queue_size: int = 0,
    sharded: bool = False,
    ops: frozenset[int] | None = None,
    shared: bool = False,
    rate_targets: frozenset[int] | None = None,
    out_vars: tuple[int, ...] | None = None,
) -> Callable:
    cache = _JIT_BY_CODE.setdefault(_loop_key(cm, triggers), {})
    trig = triggers.key if triggers else ""
    key = (T, history_size, fixed_step, stepper.name, trig, lanes, closed_form, queue_size)
    key += (sharded, ops, shared, rate_targets, out_vars)
    if key not in cache:
        solver = make_chunk_solver(
            cm,
            n_outputs=T,
            history_size=history_size,
            fixed_step=fixed_step,
            stepper=stepper,
            triggers=triggers,
            lanes=lanes,
            closed_form=closed_form,
            queue_size=queue_size,
            ops=ops,
            rate_targets=rate_targets,
            out_vars=out_vars,
        )
        cache[key] = _sharded(solver, shared) if sharded else jax.jit(solver)
    return cache[key]


def _loop_key(cm: CompiledModel, triggers: CompiledTriggers | None) -> str:
    """The cache key of ``cm``'s solver loops: its generated code where loops are
    interchangeable between models (:func:`_code_key`), else its model's hash (and solver
    choice), which names everything the loop reads; the triggers' own key is in the loop key."""
    code = _code_key(cm) if triggers is None else None
    return code or f"model:{model_hash(cm.model)}:{cm.model.stiff}"


def _code_key(cm: CompiledModel) -> str | None:
    """What a solver loop compiled for ``cm`` depends on, for models that share it: every
    generated function's source (positional: ``y[0]``, ``p[3]``; literal numbers included),
    the log-coordinate and closed-form states, and the sizes. Models that differ only in
    names and parameter values (SBML Test Suite cases, a model rebuilt with new typical
    values) then compile once. None (a loop of its own) where the loop reads more of the
    model: delays, blood products."""
    if cm.has_delays or cm.model.blood is not None:
        return None
    h = hashlib.sha256()
    for name in sorted(cm.sources):
        h.update(f"{name}\0{cm.sources[name]}\0".encode())
    h.update(np.asarray(cm.log_mask, dtype=bool).tobytes())
    sizes = (cm.linear_states, cm.n_states, cm.n_inputs, len(cm.model.observables))
    h.update(repr(sizes).encode())
    return h.hexdigest()


def _sharded(solver: Callable, shared: bool = False) -> Callable:
    """One compiled program over every host device (``shard_map``): the call's rows are split
    in equal blocks, one per device, each solved by its own loop (no communication); its
    ``n_valid`` is a (devices,) array of the valid rows of each block. A ``shared`` action
    table (one row for every patient) is replicated, not split."""
    from jax.sharding import Mesh, PartitionSpec as P

    mesh = Mesh(np.array(jax.local_devices()), ("d",))
    rows, scalar = P("d"), P()
    table = scalar if shared else rows
    # per-patient arrays split by rows; n_valid one entry per block; tolerances shared
    in_specs = ChunkInputs._make([rows] + [table] * 5 + [rows] * 3 + [scalar] * 3)
    out_specs = ChunkResult._make([rows] * 6)

    def block(ci: ChunkInputs) -> ChunkResult:
        return solver(ci._replace(n_valid=ci.n_valid[0]))

    mapped = jax.shard_map(
        block, mesh=mesh, in_specs=(in_specs,), out_specs=out_specs, check_vma=False
    )
    return jax.jit(mapped)


def _queue_size(triggers: CompiledTriggers | None) -> int:
    """Pending trigger firings held per patient: one per trigger when they act at once, more
    when delayed firings can pile up (a full queue is retried 4x larger)."""
    if triggers is None:
        return 0
    return 2 * triggers.n + (16 if triggers.has_delays else 2)


def _op_spec(op: np.ndarray, target: np.ndarray) -> tuple[frozenset[int] | None, frozenset[int]]:
    """What the loop body must handle for these tables: the simple operation set or None (any),
    and the states that infusions go into."""
    ops = frozenset(int(o) for o in np.unique(op))
    rates = np.isin(op, (OP_RATE, OP_RATE_F))
    return (_SIMPLE_OPS if ops <= _SIMPLE_OPS else None), frozenset(
        int(x) for x in np.unique(target[rates])
    )


def _stops(time: np.ndarray, op: np.ndarray) -> np.ndarray:
    """For each action index, the time of the next non-output action (or the last action)."""
    finite = np.isfinite(time)
    t_nonout = np.where((op != OP_OUTPUT) & finite, time, np.inf)
    rev = np.minimum.accumulate(t_nonout[:, ::-1], axis=1)[:, ::-1]
    last = np.where(finite, time, -np.inf).max(axis=1, initial=-np.inf)
    return np.where(np.isinf(rev), last[:, None], rev)


def _padded(table: ActionTable) -> tuple[np.ndarray, ...]:
    """``time, op, target, value, stop`` padded to a power-of-two width (the compile bucket),
    always with at least one +inf entry so that a pointer finds the end of every row."""
    A0 = table.time.shape[1]
    A = _pow2(A0 + 1, 16)

    def pad(a: np.ndarray, fill: float | int) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, A - A0)), constant_values=fill)

    time = pad(table.time, np.inf)
    op = pad(table.op, OP_NOP).astype(np.int32)
    return time, op, pad(table.target, 0).astype(np.int32), pad(table.value, 0.0), _stops(time, op)


def _discontinuity_stops(
    cm: CompiledModel, inputs: np.ndarray, table: ActionTable, t0: np.ndarray
) -> tuple[ActionTable, np.ndarray]:
    """Add step boundaries where jumps propagate through the delays (DDE models only).

    A jump at t_j (the start, a reset, a dose or state change) makes the solution's k-th
    derivative jump at t_j + (sum of k delays); DP5 must land on those up to order 5.
    """
    n, nd = cm.n_states, cm.n_delays
    taus = np.asarray(
        jax.vmap(lambda p: cm.delays(0.0, jnp.zeros(n), p, jnp.zeros(nd)))(jnp.asarray(inputs))
    )
    from hemolab.solve._history import _delay_structure

    variable, _, _ = _delay_structure(cm)
    taus = taus[:, ~variable]  # state-dependent delays: no predictable jump times
    if taus.shape[1] == 0:
        return table, t0
    if table.n_subjects == 1 and len(taus) > 1 and not np.all(taus == taus[0]):
        # patients differ in their delays: each needs its own stops
        reps = len(taus)
        table = ActionTable(
            *(
                np.repeat(a, reps, axis=0)
                for a in (table.time, table.op, table.target, table.value)
            ),
            n_outputs=table.n_outputs,
        )
        t0 = np.repeat(t0, reps)
    rows = []
    for s in range(table.n_subjects):
        tau_s = np.unique(taus[s if taus.shape[0] > 1 else 0])
        jump_ops = (OP_BOLUS, OP_RESET, OP_REPLACE, OP_MULTIPLY)
        jumps = {float(t0[s])} | set(table.time[s][np.isin(table.op[s], jump_ops)].tolist())
        shifts = {
            float(sum(c))
            for k in range(1, 5)
            for c in itertools.combinations_with_replacement(tau_s.tolist(), k)
        }
        horizon = np.nanmax(np.where(np.isfinite(table.time[s]), table.time[s], np.nan))
        extra = sorted({j + d for j in jumps for d in shifts if j + d < horizon})
        rows.append(np.asarray(extra, dtype=np.float64))
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        return table, t0
    S, A = table.time.shape
    time = np.concatenate([table.time, np.full((S, width), np.inf)], axis=1)
    op = np.concatenate([table.op, np.full((S, width), OP_NOP, np.int32)], axis=1)
    target = np.concatenate([table.target, np.zeros((S, width), np.int32)], axis=1)
    value = np.concatenate([table.value, np.zeros((S, width))], axis=1)
    for s, r in enumerate(rows):
        time[s, A : A + len(r)] = r
    # NOPs go first among equal times (they change nothing): stable sort on (time, not-NOP)
    order = np.lexsort((np.arange(time.shape[1])[None, :].repeat(S, 0), op != OP_NOP, time))
    take = np.take_along_axis
    return ActionTable(
        take(time, order, 1), take(op, order, 1), take(target, order, 1), take(value, order, 1),
        table.n_outputs,
    ), t0  # fmt: skip


def _default_lanes(cm: CompiledModel) -> int:
    """Patients a loop advances together when the caller does not say: fewer lanes waste
    less on the last patients of a call and on branches any lane takes (P1 11 % and P4 35 %
    faster at 64 than at 256), but a delay model's iteration is dearer and prefers more (P2
    13 % slower at 64). Design note 002."""
    return 256 if cm.has_delays else 64


def run_actions(
    cm: CompiledModel,
    inputs: np.ndarray,
    table: ActionTable,
    *,
    t0: float | np.ndarray = 0.0,
    y_init: np.ndarray | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    history_size: int | None = None,
    grow_history: bool = True,
    progress: Callable[[int, int], None] | None = None,
    fixed_step: float | None = None,
    stepper: Stepper = DOPRI5,
    triggers: CompiledTriggers | None = None,
    closed_form: bool = True,
    out_vars: tuple[int, ...] | None = None,
) -> RawSolution:
    """Solve N patients: ``inputs`` (N, P) and an action table of N rows (or 1, broadcast).

    ``y_init`` (N, n_states) overrides initial states where it is not NaN (steady-state
    pre-solves start each cycle from the previous one). Delay models keep ``history_size``
    past segments per patient (default: 64, or the size a previous run of this model needed);
    patients whose ring overflowed are solved again with a 16x larger ring (up to 65,536
    segments) unless ``grow_history`` is false, in which case they keep the
    ``history_overflow`` status.
    ``out_vars`` selects the variables written (indices into states then observables; None:
    all), in that order.
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    N = inputs.shape[0]
    if table.n_subjects not in (1, N):
        raise ValueError(
            f"action table has {table.n_subjects} subjects but {N} parameter rows were given"
        )
    t0_rows = np.broadcast_to(np.asarray(t0, dtype=np.float64), (table.n_subjects,))
    if cm.has_delays:
        table, t0_rows = _discontinuity_stops(cm, inputs, table, t0_rows)
    S = table.n_subjects
    T = _pow2(max(table.n_outputs, 1), 8)
    time, op, target, value, stop = _padded(table)
    # a table of outputs and doses (the common case) gets a loop body without rates, resets,
    # parameter changes or switched-off compartments; any other table the general body (two
    # variants at most, so that the number of compilations stays bounded)
    ops, rate_targets = _op_spec(op, target)
    lanes = max(1, int(chunk_size or _default_lanes(cm)))
    y0_all = np.full((N, cm.n_states), np.nan)
    if y_init is not None:
        y0_all[:] = np.broadcast_to(np.asarray(y_init, dtype=np.float64), (N, cm.n_states))
    model_key = model_hash(cm.model) if cm.has_delays else ""
    declared = min(cm.model.history_segments or _RING_START, _RING_MAX)
    hsize = history_size or _RING_HINTS.get(cm, _RING_HINTS_BY_HASH.get(model_key, declared))
    n_vars = cm.n_states + len(cm.model.observables) if out_vars is None else len(out_vars)
    values = np.full((N, table.n_outputs, n_vars), np.nan)
    status = np.zeros(N, dtype=np.int32)
    n_steps = np.zeros(N, dtype=np.int64)
    n_acc = np.zeros(N, dtype=np.int64)
    K = triggers.n if triggers is not None else 0
    t_count = np.zeros((N, K), dtype=np.int64)
    t_first = np.full((N, K), np.nan)
    pending = np.arange(N)
    qsize = _queue_size(triggers)
    # several host devices for batches worth splitting; a small one stays on one device (no
    # multi-device program to compile for a single patient)
    n_dev = len(jax.local_devices()) if N >= _MIN_SHARDED else 1
    for _ in range(_MAX_GROWTHS + 1):  # grow the delay ring (or trigger queue) on overflow
        solver = _compiled_solver(
            cm,
            T,
            hsize,
            fixed_step,
            stepper,
            triggers,
            lanes,
            closed_form,
            qsize,
            n_dev > 1,
            ops,
            shared=S == 1,
            rate_targets=rate_targets,
            out_vars=out_vars,
        )
        done = 0
        for start in range(0, len(pending), _CALL_SIZE):
            chunk = pending[start : start + _CALL_SIZE]
            # equal blocks, one per host device (padded alike), solved by one program
            parts = np.array_split(chunk, n_dev) if n_dev > 1 else [chunk]
            Mp = _call_size(max(max(len(q) for q in parts), 1))
            sel = np.concatenate(
                [
                    np.concatenate([q, np.full(Mp - len(q), q[-1] if len(q) else chunk[0])])
                    for q in parts
                ]
            )
            rows = sel if S > 1 else np.zeros(len(sel), dtype=np.int64)
            # a table shared by every patient goes in as its one row (P2: 2,048 actions
            # copied for each of 1,000 items cost more host and device memory than the loop)
            trows = sel if S > 1 else np.zeros(1, dtype=np.int64)
            res = solver(
                ChunkInputs(
                    inputs=jnp.asarray(inputs[sel]),
                    act_time=jnp.asarray(time[trows]),
                    act_op=jnp.asarray(op[trows]),
                    act_target=jnp.asarray(target[trows]),
                    act_value=jnp.asarray(value[trows]),
                    act_stop=jnp.asarray(stop[trows]),
                    t0=jnp.asarray(t0_rows[rows]),
                    y_init=jnp.asarray(y0_all[sel]),
                    n_valid=jnp.asarray(
                        [len(q) for q in parts] if n_dev > 1 else len(chunk), dtype=jnp.int32
                    ),
                    rtol=jnp.asarray(rtol, dtype=jnp.float64),
                    atol=jnp.asarray(atol, dtype=jnp.float64),
                    max_steps=jnp.asarray(max_steps, dtype=jnp.int32),
                )
            )
            got = {
                "values": np.asarray(res.outputs),
                "status": np.asarray(res.status),
                "n_steps": np.asarray(res.n_steps),
                "n_acc": np.asarray(res.n_accepted),
                "t_count": np.asarray(res.trigger_count),
                "t_first": np.asarray(res.trigger_first),
            }
            for d, idx in enumerate(parts):
                if not len(idx):
                    continue
                r0, r1 = d * Mp, d * Mp + len(idx)
                values[idx] = got["values"][r0:r1, : table.n_outputs]
                status[idx] = got["status"][r0:r1]
                n_steps[idx] = got["n_steps"][r0:r1]
                n_acc[idx] = got["n_acc"][r0:r1]
                t_count[idx] = got["t_count"][r0:r1]
                t_first[idx] = got["t_first"][r0:r1]
            done += len(chunk)
            if progress is not None:
                progress(done, len(pending))
        full = pending[status[pending] == QUEUE_FULL]
        overflowed = pending[status[pending] == Status.HISTORY_OVERFLOW]
        if len(full):
            pending, qsize = full, qsize * 4
            continue
        if not cm.has_delays or len(overflowed) == 0 or not grow_history or hsize >= _RING_MAX:
            break
        pending, hsize = overflowed, min(hsize * _RING_GROWTH, _RING_MAX)
    if cm.has_delays and history_size is None:  # later runs start from the size that sufficed
        _RING_HINTS[cm] = max(hsize, _RING_HINTS.get(cm, _RING_START))
        _RING_HINTS_BY_HASH[model_key] = max(_RING_HINTS[cm], _RING_HINTS_BY_HASH.get(model_key, 0))
    if np.any(status == DELAY_NOT_POSITIVE):
        rows_bad = np.flatnonzero(status == DELAY_NOT_POSITIVE)
        names = [f"{s}(t - {tau})" for s, tau in cm.model.delays]
        raise SolveError(
            f"a state-dependent delay fell to 0 or below (it must stay above a positive bound "
            f"where the equations read it, >= 0 where only outputs do) for batch indices "
            f"{rows_bad[:10].tolist()}; delays: {names}"
        )
    if np.any(status == QUEUE_FULL):
        rows_full = np.flatnonzero(status == QUEUE_FULL)
        raise SolveError(
            f"more than {qsize} trigger firings were pending at once (delayed triggers that "
            f"fire faster than they act) for batch indices {rows_full[:10].tolist()}"
        )
    bad = status != Status.OK
    values[bad] = np.nan
    return RawSolution(
        values=values,
        status=status,
        n_steps=n_steps,
        n_accepted=n_acc,
        trigger_count=t_count,
        trigger_first=t_first,
    )


def make_solve_fn(
    cm: CompiledModel,
    table: ActionTable,
    *,
    t0: float = 0.0,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    history_size: int = 1024,
    stepper: Stepper = DOPRI5,
    out_vars: tuple[int, ...] | None = None,
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A pure JAX function ``inputs (N, P) -> (values (N, T, V), status (N,))``.

    It is what calibration and search differentiate: jit it, ``vmap`` it, or take forward-mode
    derivatives (``jax.jvp``/``jax.jacfwd``) with respect to the inputs. The action table must
    have one row or N rows; delay models get their discontinuity stops from the typical
    inputs, so differentiate delays' lengths only through finite differences. ``out_vars``
    selects the variables of ``values`` (indices into states then observables; None: all).
    ``solve(inputs, act_value)`` replaces the table's action values (``(A,)`` or ``(S, A)``,
    the table's own width): doses, parameter values, so that they can be differentiated too
    (protocol search by gradient); the times and operations stay the table's.
    """
    if cm.has_delays:
        table, _ = _discontinuity_stops(cm, cm.typical_inputs[None, :], table, np.zeros(1))
    A0 = table.time.shape[1]
    arrays = _padded(table)
    A = arrays[0].shape[1]
    ops, rate_targets = _op_spec(arrays[1], arrays[2])
    solver = make_chunk_solver(
        cm,
        n_outputs=max(table.n_outputs, 1),
        history_size=history_size,
        stepper=stepper,
        lanes=1 << 30,  # every patient in its own lane: one pass, no refills
        ops=ops,
        rate_targets=rate_targets,
        out_vars=out_vars,
    )
    T = table.n_outputs

    def solve(inputs: jax.Array, act_value: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        N = inputs.shape[0]
        given: list[Any] = list(arrays)
        if act_value is not None:
            if cm.has_delays:
                raise ValueError("act_value: not for delay models (their table gains stops)")
            v = jnp.atleast_2d(jnp.asarray(act_value, dtype=jnp.float64))
            given[3] = jnp.pad(v, ((0, 0), (0, A - A0)))
        rows = [
            jnp.broadcast_to(jnp.asarray(a), (N, A)) if jnp.shape(a)[0] == 1 else jnp.asarray(a)
            for a in given
        ]
        res = solver(
            ChunkInputs(
                inputs=inputs,
                act_time=rows[0],
                act_op=rows[1],
                act_target=rows[2],
                act_value=rows[3],
                act_stop=rows[4],
                t0=jnp.full(N, t0),
                y_init=jnp.full((N, cm.n_states), jnp.nan),
                n_valid=jnp.asarray(N, dtype=jnp.int32),
                rtol=jnp.asarray(rtol, dtype=jnp.float64),
                atol=jnp.asarray(atol, dtype=jnp.float64),
                max_steps=jnp.asarray(max_steps, dtype=jnp.int32),
            )
        )
        return res.outputs[:, :T], res.status

    return solve

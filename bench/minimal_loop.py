"""A minimal hand-written P1 loop: the bound the engine's general loop is measured against.

Same algorithm as hemolab's solver (adaptive Dormand-Prince 5(4), closed-form one-compartment
PK, the five neutrophil states as logarithms, a fresh step guess at every dose, lanes refilled
as patients finish, dense output onto the 24 h grid), but written for P1 only: the doses are
known in advance, only Circ is written out, and there is no action table. It takes the same
steps per patient as the engine (mean 261.8 at N = 2,000), so the time difference is the cost
of the engine's generality (bench/README.md, "Where the time goes").

    python bench/minimal_loop.py [--n 2000] [--lanes 256] [--devices 1|2]
                                 [--rhs literal|simplified] [--layout lanes-states|states-lanes]

``literal`` evaluates ``f(exp(u))/exp(u)`` with a power for the feedback; ``simplified`` is
what design note 012 derives (``exp`` of differences). ``states-lanes`` stores each state as
a contiguous vector over lanes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.problems import P1_GRID_H, p1_population

# Dormand-Prince 5(4) tableau, error weights and dense-output weights (Hairer, Solving ODEs I)
A = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
D = (
    -12715105075 / 11282082432,
    0.0,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380920,
)
C_NODES = (0.2, 0.3, 0.8, 8 / 9, 1.0)
GAMMA, V, DOSE_MG = 0.17, 30.0, 100.0
DOSE_TIMES_H = np.arange(6) * 504.0


def make_solver(M: int, C: int, simplified: bool, states_lanes: bool) -> Callable[..., Any]:
    """``solve(inputs (M, 4), n_valid, rtol, atol) -> (Circ (M, T), steps (M,))``."""
    import jax
    import jax.numpy as jnp

    grid = jnp.asarray(P1_GRID_H)
    doses = jnp.asarray(np.append(DOSE_TIMES_H, np.inf))
    T, ND, t_end = grid.shape[0], len(DOSE_TIMES_H), float(P1_GRID_H[-1])
    ax = 0 if states_lanes else 1  # the states axis

    def col(u: jax.Array, i: int) -> jax.Array:
        return u[i] if states_lanes else u[:, i]

    def lanes(v: jax.Array) -> jax.Array:  # a per-lane value broadcast against states
        return v[None, :] if states_lanes else v[:, None]

    def rms(x: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.mean(x * x, axis=ax))

    def f(t: jax.Array, u: jax.Array, p: jax.Array, a0: jax.Array, tk: jax.Array) -> jax.Array:
        cl, mtt, c0, slope = (col(p, i) for i in range(4))
        ktr = 4.0 / mtt
        e_drug = slope * a0 * jnp.exp(-cl / V * (t - tk)) / V
        if simplified:
            d = [ktr * ((1 - e_drug) * jnp.exp(GAMMA * (jnp.log(c0) - col(u, 4))) - 1)]
            d += [ktr * (jnp.exp(col(u, i) - col(u, i + 1)) - 1) for i in range(4)]
            return jnp.stack(d, axis=ax)
        y = [jnp.exp(col(u, i)) for i in range(5)]
        dy = [ktr * y[0] * (1 - e_drug) * (c0 / y[4]) ** GAMMA - ktr * y[0]]
        dy += [ktr * y[i] - ktr * y[i + 1] for i in range(4)]
        return jnp.stack([dy[i] / y[i] for i in range(5)], axis=ax)

    def load(pid: jax.Array, inputs: jax.Array, n_valid: jax.Array) -> dict[str, jax.Array]:
        valid = pid < n_valid
        p = inputs[jnp.clip(pid, 0, M - 1)]
        p = p.T if states_lanes else p
        u = jnp.broadcast_to(jnp.log(lanes(col(p, 2))), (5, C) if states_lanes else (C, 5))
        return dict(
            pid=jnp.where(valid, pid, M),
            t=jnp.zeros(C),
            h=jnp.zeros(C),
            u=u,
            k1=jnp.zeros_like(u),
            p=p,
            a0=jnp.full(C, DOSE_MG),
            tk=jnp.zeros(C),
            di=jnp.ones(C, jnp.int32),
            oi=jnp.ones(C, jnp.int32),
            run=valid,
            fresh=jnp.ones(C, bool),
            ns=jnp.zeros(C, jnp.int32),
        )

    def solve(inputs: jax.Array, n_valid: jax.Array, rtol: float, atol: float) -> Any:
        c = load(jnp.arange(C), inputs, n_valid)
        out = jnp.full((M, T), jnp.nan)
        out = out.at[jnp.where(c["run"], c["pid"], M), 0].set(jnp.exp(col(c["u"], 4)), mode="drop")
        keys = list(c)
        c.update(out=out, nxt=jnp.asarray(C), steps=jnp.zeros(M, jnp.int32))
        sc = rtol + atol  # every integrated state is a logarithm

        def refill(c: dict) -> dict:
            c = dict(c)
            done = ~c["run"] & (c["pid"] < M)
            c["steps"] = c["steps"].at[jnp.where(done, c["pid"], M)].set(c["ns"], mode="drop")
            cand = c["nxt"] + jnp.cumsum(done.astype(jnp.int32)) - 1
            new_pid = jnp.where(done & (cand < n_valid), cand, M)
            c["nxt"] = jnp.minimum(c["nxt"] + jnp.sum(done), n_valid)
            fr = load(new_pid, inputs, n_valid)
            for k in keys:
                m = done if c[k].ndim == 1 else lanes(done)
                c[k] = jnp.where(m, fr[k], c[k])
            rows = jnp.where(done & (new_pid < M), new_pid, M)
            c["out"] = c["out"].at[rows, 0].set(jnp.exp(col(fr["u"], 4)), mode="drop")
            return c

        def body(c: dict) -> dict:
            c = jax.lax.cond(jnp.any(~c["run"] & (c["pid"] < M)), refill, lambda c: c, c)
            out = c.pop("out")
            t, u, p, a0, tk, h, k1, run = (
                c[k] for k in ("t", "u", "p", "a0", "tk", "h", "k1", "run")
            )
            stop = jnp.minimum(doses[c["di"]], t_end)
            room = stop - t
            fresh = c["fresh"] & run

            def restart(a: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
                k1, h = a
                k1n = f(t, u, p, a0, tk)
                d0, d1 = rms(u / sc), rms(k1n / sc)
                h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
                h0 = jnp.minimum(h0, room)
                d2 = rms((f(t + h0, u + lanes(h0) * k1n, p, a0, tk) - k1n) / sc) / h0
                dm = jnp.maximum(d1, d2)
                h1 = jnp.where(
                    dm <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), jnp.exp(jnp.log(0.01 / dm) / 5)
                )
                return jnp.where(lanes(fresh), k1n, k1), jnp.where(
                    fresh, jnp.minimum(100 * h0, h1), h
                )

            k1, h = jax.lax.cond(jnp.any(fresh), restart, lambda a: a, (k1, h))
            land = h >= room
            he = jnp.where(run, jnp.where(land, room, h), 1.0)
            H = lanes(he)
            ks = [k1]
            for ci, row in zip(C_NODES, A, strict=True):
                ks.append(
                    f(
                        t + ci * he,
                        u + H * sum(a * k for a, k in zip(row, ks, strict=False)),
                        p,
                        a0,
                        tk,
                    )
                )
            u_new = u + H * sum(b * k for b, k in zip(B, ks, strict=True))
            ks.append(f(t + he, u_new, p, a0, tk))
            err = rms(H * sum(e * k for e, k in zip(E, ks, strict=True)) / sc)
            ok = jnp.isfinite(err)
            acc = run & ok & (err <= 1)
            fac = jnp.where(ok, 0.9 * jnp.exp(-jnp.log(jnp.maximum(err, 1e-10)) / 5), 0.2)
            fac = jnp.clip(fac, 0.2, jnp.where(acc, 10.0, 1.0))
            t_new = jnp.where(land, stop, t + he)
            # Hermite-like dense output of Circ (DP5 continuous extension)
            u0, u1 = col(u, 4), col(u_new, 4)
            dd = he * sum(d * col(k, 4) for d, k in zip(D, ks, strict=True))
            dy = u1 - u0
            bs = he * col(k1, 4) - dy
            cc = dy - he * col(ks[-1], 4) - bs

            def due(oi: jax.Array) -> jax.Array:
                return acc & (oi < T) & (grid[jnp.minimum(oi, T - 1)] <= t_new)

            def write(a: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
                oi, out = a
                w = due(oi)
                tq = grid[jnp.minimum(oi, T - 1)]
                th = jnp.clip((tq - t) / he, 0, 1)
                val = u0 + th * (dy + (1 - th) * (bs + th * (cc + (1 - th) * dd)))
                rows = jnp.where(w, c["pid"], M + jnp.arange(C))
                out = out.at[rows, jnp.minimum(oi, T - 1)].set(
                    jnp.exp(val), mode="drop", unique_indices=True
                )
                return oi + w, out

            oi, out = jax.lax.while_loop(lambda a: jnp.any(due(a[0])), write, (c["oi"], out))
            t2 = jnp.where(acc, t_new, t)
            dose = acc & land & (c["di"] < ND)
            a_now = a0 * jnp.exp(-col(p, 0) / V * (t2 - tk))
            finished = acc & land & (stop >= t_end)
            return dict(
                c,
                out=out,
                t=t2,
                u=jnp.where(lanes(acc), u_new, u),
                k1=jnp.where(lanes(acc), ks[-1], k1),
                h=jnp.where(run, he * fac, h),
                a0=jnp.where(dose, a_now + DOSE_MG, a0),
                tk=jnp.where(dose, t2, tk),
                di=c["di"] + dose,
                oi=oi,
                fresh=(c["fresh"] & ~run) | dose,
                run=run & ~finished,
                ns=c["ns"] + run,
            )

        def cond(c: dict) -> jax.Array:
            return jnp.any(c["run"]) | (c["nxt"] < n_valid)

        fin = refill(jax.lax.while_loop(cond, body, c))
        return fin["out"], fin["steps"]

    return solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--lanes", type=int, default=256)
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--rhs", choices=("literal", "simplified"), default="simplified")
    ap.add_argument("--layout", choices=("lanes-states", "states-lanes"), default="lanes-states")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    pop = p1_population(args.n)
    inputs = np.stack([pop["CL"], pop["MTT"], pop["Circ0"], pop["Slope"]], axis=1)
    parts = np.array_split(np.arange(args.n), args.devices)
    M = 1 << (max(len(q) for q in parts) - 1).bit_length()
    solve = make_solver(
        M, min(args.lanes, M), args.rhs == "simplified", args.layout == "states-lanes"
    )
    X = np.concatenate(
        [np.concatenate([inputs[q], np.repeat(inputs[q[-1:]], M - len(q), 0)]) for q in parts]
    )
    n_valid = np.array([len(q) for q in parts], np.int32)
    if args.devices > 1:
        from jax.sharding import Mesh, PartitionSpec as P

        mesh = Mesh(np.array(jax.devices()), ("d",))
        fn = jax.jit(
            jax.shard_map(
                lambda x, nv: solve(x, nv[0], 1e-6, 1e-8),
                mesh=mesh,
                in_specs=(P("d"), P("d")),
                out_specs=(P("d"), P("d")),
                check_vma=False,
            )
        )
        call_args = (jnp.asarray(X), jnp.asarray(n_valid))
    else:
        fn = jax.jit(lambda x, nv: solve(x, nv, 1e-6, 1e-8))
        call_args = (jnp.asarray(X), jnp.asarray(args.n, jnp.int32))
    start = time.perf_counter()
    jax.block_until_ready(fn(*call_args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out, steps = jax.block_until_ready(fn(*call_args))
        times.append(time.perf_counter() - start)
    out, steps = np.asarray(out), np.asarray(steps)
    rows = np.concatenate([d * M + np.arange(len(q)) for d, q in enumerate(parts)])
    out, steps = out[rows], steps[rows]
    print(
        f"N={args.n} lanes={args.lanes} devices={args.devices} rhs={args.rhs} "
        f"layout={args.layout}: min {min(times):.4f} s (compile {compile_s:.1f} s), "
        f"steps mean {steps.mean():.1f} max {steps.max()}, patient 0 nadir {np.nanmin(out[0]):.8f} "
        "(reference 1.71012835)"
    )


if __name__ == "__main__":
    main()

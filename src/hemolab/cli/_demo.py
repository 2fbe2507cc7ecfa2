"""``hemolab demo``: a docetaxel population end to end, then every library model once.

Part 1: 1,000 virtual patients (Kloft 2006 IIV on Circ0, MTT and Slope; BSA drawn per patient)
receive docetaxel 100 mg/m² as a 1-h infusion every 21 days, 4 cycles. The regimen is a
NONMEM-style dataset (``AMT_UNIT=mg/m2``, a ``BSA`` column) that goes through the same reader,
schedule and solver as any user file. Reported: each cycle's ANC nadir (median, 90 % interval),
the incidence of CTCAE v5.0 grade 3 and 4 neutropenia, the typical patient (MODELS.md §1 target
2), and a plot of the median and 90 % band.

Part 2: one run of each other library model under its typical regimen (``TypicalRun``).

Part 3, the showcase: a patient whose Hb falls month after month (``marrow_failure_hb``); six
months of CBCs in a FHIR bundle are imported (de-identified), calibrated with NUTS and
forecast: when does Hb fall below 7 g/dL, with a fan chart (``hemolab.cli._showcase``).

Part 4, the interventions (``hemolab.cli._interventions``), recorded as experiments in the
store where the showcase's calibration and forecast were recorded too; the demo ends with
the report of that story (``report.html``: the patient's forecast and fit, then every
intervention), one file that opens in a browser without a network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hemolab.cli._showcase import run_showcase

CYCLE_H = 21 * 24.0
N_CYCLES = 4
N_PATIENTS = 1000
SEED = 20261125
DT_H = 4.0
BSA_MEAN, BSA_SD, BSA_LOW, BSA_HIGH = 1.85, 0.20, 1.4, 2.4
"""Adult oncology BSA (m²) drawn per virtual patient: N(1.85, 0.20²) truncated to [1.4, 2.4]
(an assumption of the demo, typical of adult trial populations; not from MODELS.md)."""

LLN_ANC = 1.8
"""Lower limit of normal for ANC (10⁹/L), Merck Manual (MODELS.md §7a)."""


def ctcae_neutropenia_grade(anc: float) -> int:
    """CTCAE v5.0 'Neutrophil count decreased' grade (LLN taken as 1.8 ×10⁹/L, §7a)."""
    return int(ctcae_neutropenia_grades(np.asarray([anc]))[0])


def ctcae_neutropenia_grades(anc: np.ndarray) -> np.ndarray:
    """Vectorised CTCAE v5.0 neutropenia grades (MODELS.md §7b): G4 < 0.5 ≤ G3 < 1.0 ≤ G2 <
    1.5 ≤ G1 < LLN ≤ G0. NaN (a failed patient) gets -1."""
    from hemolab.forecast import ctcae_grades

    return ctcae_grades("ANC", np.asarray(anc, dtype=np.float64), lln=LLN_ANC)


def demo_events(bsa: float | None = 1.8) -> Any:
    """The regimen: 4 × 100 mg/m² 1-h infusions q21d (with a BSA column unless ``bsa`` is None)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "ID": [1] * N_CYCLES,
            "TIME": [k * CYCLE_H for k in range(N_CYCLES)],
            "EVID": [1] * N_CYCLES,
            "CMT": ["A1"] * N_CYCLES,
            "AMT": [100.0] * N_CYCLES,
            "AMT_UNIT": ["mg/m2"] * N_CYCLES,
            "DUR": [1.0] * N_CYCLES,
        }
    )
    if bsa is not None:
        frame["BSA"] = bsa
    return frame


@dataclass
class _Bar:
    """One Rich progress task fed by the solver's ``(done, total)`` callback."""

    progress: Progress
    task: Any

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)


def run_demo(
    out: Path,
    *,
    quiet: bool = False,
    console: Console | None = None,
    n_patients: int = N_PATIENTS,
    showcase_iterations: tuple[int, int, int] = (4, 1000, 1000),
) -> dict[str, Any]:
    """Run the demo; write results, plots and ``summary.json`` into ``out``; return the summary."""
    from hemolab._simulate import simulate
    from hemolab.cli._interventions import run_interventions, store_of
    from hemolab.library import friberg_docetaxel, list_models
    from hemolab.population import Normal, Population, simulate_population

    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    model = friberg_docetaxel()
    t_end = N_CYCLES * CYCLE_H
    others = [n for n in list_models() if not n.startswith("friberg_docetaxel")]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        typical = simulate(
            model,
            demo_events(),
            t_end=t_end,
            dt=1.0,
            run_id="demo",
            scenario="typical_patient",
            throw=True,
        )
        pop = Population(
            model,
            n=n_patients,
            seed=SEED,
            covariates={"BSA": Normal(BSA_MEAN, BSA_SD, BSA_LOW, BSA_HIGH)},
        )
        bar = _Bar(progress, progress.add_task("docetaxel population", total=n_patients))
        result = simulate_population(
            pop,
            demo_events(bsa=None),
            t_end=t_end,
            dt=DT_H,
            out=out / "results.parquet",
            chunk_size=500,
            keep_results=True,
            progress=bar,
            run_id="demo",
            scenario="docetaxel_100mg_m2_q21d_x4",
        )
        lib_task = progress.add_task("library models", total=len(others))
        library = []
        for name in others:
            library.append(_library_run(name))
            progress.advance(lib_task)
        chains, warmup, draws = showcase_iterations
        show_task = progress.add_task(
            f"showcase patient: NUTS {chains} x ({warmup} + {draws})", total=1
        )
        story = store_of(out / "interventions")  # one store: one report holds the story
        showcase = run_showcase(out / "showcase", chains=chains, warmup=warmup, draws=draws,
                                experiments=story)  # fmt: skip
        progress.advance(show_task)
        iv_task = progress.add_task(
            "interventions: samples mixed, a drug too potent, a protocol searched", total=1
        )
        interventions = run_interventions(out / "interventions")
        progress.advance(iv_task)
        report_task = progress.add_task("the report of the story", total=1)
        report = _report(story, showcase, interventions, out / "report.html")
        progress.advance(report_task)
        serve = _demo_user(story, showcase["patient"], out / "demo-user.txt")
    typical_cycles = _typical_cycles(typical)
    pop_summary = _population_summary(result, pop)
    band_png = _plot_population(result, typical, out / "anc.png")
    lib_png = _plot_library(library, out / "library.png")
    files = [
        str(out / "results.parquet"),
        str(band_png),
        str(out / "summary.json"),
        str(lib_png),
        *showcase["files"],
        str(_plot_samples(out / "interventions")),
        report["path"],
    ]
    summary = {
        "model": model.name,
        "regimen": "docetaxel 100 mg/m2 1-h IV q21d x4 (AMT_UNIT=mg/m2, BSA covariate)",
        "cycles": typical_cycles,
        "status": typical.status_labels[0],
        "population": pop_summary,
        "library": [
            {k: v for k, v in r.items() if k not in ("time", "values", "log_scale")}
            for r in library
        ],
        "showcase": showcase,
        "interventions": interventions,
        "report": report,
        "serve": serve,
        "files": files,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        _print(console, summary)
    return summary


def _report(
    store: Path, showcase: dict[str, Any], interventions: dict[str, Any], path: Path
) -> dict[str, Any]:
    """The report of the story: the patient's forecast and fit first, then the
    interventions in the order they were recorded."""
    import time

    from hemolab.reports import make_report, save_report

    patient = [showcase["experiments"][k] for k in ("forecast", "calibrate")]
    ids = [i for i in patient if i] + [
        e["id"] for e in interventions["experiments"] if e["id"] not in patient
    ]
    started = time.perf_counter()
    report = make_report(store, ids)
    save_report(report, path)
    return {
        "path": str(path),
        "experiments": ids,
        "n_figures": len(report.figures),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _demo_user(store: Path, patient: str, password_file: Path) -> dict[str, Any]:
    """A web user ``demo`` (analyst, granted the showcase patient) on the story's store, with
    a fresh random password in ``password_file`` (owner-only), for ``hemolab serve``."""
    import os
    import secrets

    from hemolab.web import UserStore

    users = UserStore(store)
    if users.get("demo") is not None:  # a demo run again: a new password
        users.remove("demo")
    password = secrets.token_urlsafe(12)
    users.add("demo", "analyst", password)
    users.grant("demo", patient)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"user: demo\npassword: {password}\n")
    return {
        "command": f"hemolab serve --store {store}",
        "url": "http://127.0.0.1:8000",
        "user": "demo",
        "role": "analyst",
        "password_file": str(password_file),
    }


def _typical_cycles(res: Any) -> list[dict[str, Any]]:
    """Per-cycle nadir of the typical patient (BSA 1.8 m², 1-h outputs)."""
    t, anc = res.time[0], res.variable("ANC")[0]
    cycles = []
    for k in range(N_CYCLES):
        sel = (t >= k * CYCLE_H) & (t < (k + 1) * CYCLE_H)
        i = int(np.argmin(np.where(sel, anc, np.inf)))
        cycles.append(
            {
                "cycle": k + 1,
                "nadir_anc": float(anc[i]),
                "nadir_day": float((t[i] - k * CYCLE_H) / 24.0),
                "ctcae_grade": ctcae_neutropenia_grade(float(anc[i])),
                "days_below_1_0": float(np.sum(sel & (anc < 1.0)) / 24.0),
            }
        )
    return cycles


def _population_summary(result: Any, pop: Any) -> dict[str, Any]:
    """Per-cycle nadir distribution and CTCAE grade incidence over the population."""
    res = result.results
    t = res.time[0]
    anc = res.variable("ANC")
    ok = res.status == 0
    cycles = []
    worst = np.full(anc.shape[0], np.inf)
    for k in range(N_CYCLES):
        sel = (t >= k * CYCLE_H) & (t < (k + 1) * CYCLE_H)
        nadir = np.where(sel[None, :], anc, np.inf).min(axis=1)
        day = (t[np.where(sel[None, :], anc, np.inf).argmin(axis=1)] - k * CYCLE_H) / 24.0
        worst = np.minimum(worst, nadir)
        grades = ctcae_neutropenia_grades(nadir[ok])
        q = np.quantile(nadir[ok], (0.05, 0.5, 0.95))
        cycles.append(
            {
                "cycle": k + 1,
                "nadir_median": float(q[1]),
                "nadir_q05": float(q[0]),
                "nadir_q95": float(q[2]),
                "nadir_day_median": float(np.median(day[ok])),
                "grade3_or_4_pct": float(100 * np.mean(grades >= 3)),
                "grade4_pct": float(100 * np.mean(grades == 4)),
            }
        )
    grades = ctcae_neutropenia_grades(worst[ok])
    bsa = pop.covariate_values()["BSA"]
    return {
        "n_patients": int(pop.n),
        "seed": int(pop.seed),
        "omega": pop.describe()["omega"],
        "bsa_m2": {"mean": float(np.mean(bsa)), "min": float(bsa.min()), "max": float(bsa.max())},
        "status": {k: int(v) for k, v in result.status_counts.items()},
        "cycles": cycles,
        "any_cycle": {
            "grade3_or_4_pct": float(100 * np.mean(grades >= 3)),
            "grade4_pct": float(100 * np.mean(grades == 4)),
        },
        "band_accuracy": result.band_accuracy,
    }


def _library_run(name: str) -> dict[str, Any]:
    """One run of a library model under its typical regimen, summarised."""
    from hemolab._simulate import simulate
    from hemolab.library import get_model, typical_run

    model = get_model(name)
    run = typical_run(name)
    res = simulate(
        model,
        run.events(),
        params=run.params,
        t_end=run.t_end,
        dt=run.dt,
        run_id="demo",
        scenario=name,
        throw=True,
    )
    t, v = res.time[0], res.variable(run.observable)[0]
    unit = dict(zip(res.variables, res.units, strict=True))[run.observable]
    i_min, i_max = int(np.nanargmin(v)), int(np.nanargmax(v))
    days = {"h": 1 / 24.0, "d": 1.0, "min": 1 / 1440.0, "s": 1 / 86400.0}.get(model.time_unit, 1.0)
    return {
        "model": name,
        "regimen": run.description,
        "observable": run.observable,
        "unit": unit,
        "initial": float(v[0]),
        "min": float(v[i_min]),
        "min_day": float(t[i_min] * days),
        "max": float(v[i_max]),
        "max_day": float(t[i_max] * days),
        "final": float(v[-1]),
        "status": res.status_labels[0],
        "experimental": model.description.lower().startswith("experimental"),
        "log_scale": run.log_scale,
        "time": t * days,
        "values": v,
    }


def _print(console: Console, summary: dict[str, Any]) -> None:
    pop = summary["population"]
    table = Table(
        title=f"Docetaxel 100 mg/m² q21d × 4 — {pop['n_patients']} virtual patients "
        f"(Friberg 2002, Kloft 2006 IIV; seed {pop['seed']})"
    )
    for col in (
        "cycle",
        "ANC nadir median [90 % PI] (10⁹/L)",
        "nadir day",
        "grade ≥3 %",
        "grade 4 %",
        "typical patient nadir (day)",
    ):
        table.add_column(col, justify="right")
    for c, t in zip(pop["cycles"], summary["cycles"], strict=True):
        table.add_row(
            str(c["cycle"]),
            f"{c['nadir_median']:.2f} [{c['nadir_q05']:.2f}, {c['nadir_q95']:.2f}]",
            f"{c['nadir_day_median']:.1f}",
            f"{c['grade3_or_4_pct']:.1f}",
            f"{c['grade4_pct']:.1f}",
            f"{t['nadir_anc']:.3f} (d{t['nadir_day']:.1f}, G{t['ctcae_grade']})",
        )
    console.print(table)
    anyc = pop["any_cycle"]
    console.print(
        f"CTCAE v5.0 neutropenia in any cycle: grade ≥3 in {anyc['grade3_or_4_pct']:.1f} %, "
        f"grade 4 in {anyc['grade4_pct']:.1f} % of patients."
    )
    lib = Table(title="Library models under their typical regimens")
    lib.add_column("model", no_wrap=True)
    for col in ("observable", "start", "min (day)", "max (day)", "end"):
        lib.add_column(col, overflow="fold", justify="left" if col == "observable" else "right")
    for r in summary["library"]:
        name = r["model"] + (" *" if r["experimental"] else "")
        lib.add_row(
            name,
            f"{r['observable']} [{r['unit']}]",
            f"{r['initial']:.4g}",
            f"{r['min']:.4g} ({r['min_day']:.0f})",
            f"{r['max']:.4g} ({r['max_day']:.0f})",
            f"{r['final']:.4g}",
        )
    console.print(lib)
    for r in summary["library"]:
        console.print(f"  {r['model']}: {r['regimen']}", highlight=False)
    console.print("  * experimental: parameters or structure not fully verified (hemolab show)")
    sc = summary["showcase"]
    last = sc["t_last_observation"]

    def day(t: float | None) -> str:
        return f"beyond day {last + sc['horizon']:.0f}" if t is None else f"day {t:.0f}"

    console.print(
        f"Showcase patient {sc['patient']} ({sc['model']}, {sc['n_observations']} monthly CBCs "
        f"to day {last:.0f}, FHIR bundle → store → NUTS):"
    )
    if sc["median"] is None:
        console.print(f"  Hb stays above 7 g/dL within {sc['horizon']:.0f} days (median draw)")
    else:
        console.print(
            f"  Hb falls below 7 g/dL in about {sc['median'] - last:.0f} days "
            f"({day(sc['median'])}); "
            f"90 % interval [{day(sc['lower'])}, {day(sc['upper'])}]; "
            f"P(within {sc['horizon']:.0f} d) = {sc['p_within_horizon']:.2f}",
            highlight=False,
        )
    for w in sc["warnings"]:
        console.print(f"  note: {w}", highlight=False)
    _print_interventions(console, summary["interventions"])
    console.print("research use only — not for clinical decisions", style="dim")
    console.print(f"written: {', '.join(summary['files'])}", soft_wrap=True, highlight=False)
    rep = summary["report"]
    console.print(
        f"The story's report ({len(rep['experiments'])} experiments, {rep['n_figures']} "
        f"figures): open {Path(rep['path']).resolve().as_uri()} in a browser; no network "
        "needed (hemolab report ID... --store "
        f"{summary['interventions']['store']} --out FILE makes others).",
        soft_wrap=True,
        highlight=False,
    )
    sv = summary["serve"]
    password = Path(sv["password_file"]).read_text().split("password: ")[-1].strip()
    console.print(
        f"Explore it on the web: .venv/bin/{sv['command']}, then open {sv['url']} and sign in as "
        f"{sv['user']} / {password} ({sv['role']}, granted the showcase patient; the password "
        f"is also in {sv['password_file']}).",
        soft_wrap=True,
        highlight=False,
    )


def _print_interventions(console: Console, iv: dict[str, Any]) -> None:
    samples = iv["samples"]
    table = Table(title="Samples A and D: Hb (g/dL) and ANC (10⁹/L), untreated vs treated")
    table.add_column("sample / arm", no_wrap=True)
    days = list(samples["treated"]["samples"]["A"]["Hb"])
    for d in days:
        table.add_column(d, justify="right")
    for who in ("A", "D"):
        for arm in ("untreated", "treated"):
            vals = samples[arm]["samples"][who]
            table.add_row(
                f"{who} {arm}", *(f"{vals['Hb'][d]:.1f} / {vals['ANC'][d]:.2f}" for d in days)
            )
    console.print(table)
    a, d = (samples["treated"]["samples"][w] for w in "AD")

    def verdict(day: str) -> str:
        both = f"A {a['Hb'][day]:.1f}, D {d['Hb'][day]:.1f} g/dL"
        return ("both" if all(12.0 <= x["Hb"][day] <= 17.5 for x in (a, d)) else "not both") + (
            f" within 12-17.5 g/dL ({both})"
        )

    console.print(
        "  treated: 3 × 500 mL of A's cells into D (days 90, 104, 118; A depleted) and 3 weekly "
        f"ESA series in D. Do the diseases cancel? Day 120: {verdict('day 120')}; day 180: "
        f"{verdict('day 180')}. A's ANC stays {a['ANC']['day 180']:.2f}: its white-cell "
        "disease is untouched.",
        highlight=False,
    )
    tp = iv["too_potent"]
    unit = tp["time_unit"]
    console.print(f"Too potent: {tp['protocol']} ({tp['n_patients']} virtual patients)")
    for lim in tp["limits"]:
        state = "[green]held[/]" if lim["met"] else "[red]BROKEN[/]"
        extra = ""
        if lim["broken_from"] is not None:
            extra = f", first at {lim['broken_from']:.3g} {unit}"
            if lim["exceeded_by"] is not None:
                extra += f", exceeded by {lim['exceeded_by']:.3g} (median)"
        console.print(
            f"  {lim['name']}: P = {lim['probability']:.2f} (allowed "
            f"{lim['max_probability']:.2f}) {state}{extra}"
        )
    for arm in iv["rejection"].values():
        rej = arm["rejection"]
        lo, hi = rej["interval_95"]
        console.print(
            f"Rejection risk, {arm['protocol']} ({arm['n_patients']} virtual patients): "
            f"{rej['n_incompatible']} given an incompatible unit (P = {rej['probability']:.3f}, "
            f"95 % {lo:.3f}-{hi:.3f}), {rej['n_haemolytic']} with ABO-incompatible red cells; "
            f"median Hb at day 60 {arm['hb_final_median']:.1f} g/dL",
            highlight=False,
        )
    se = iv["search"]
    console.print(
        f"Search ({se['method']}, {se['n_evaluated']} protocols × {se['n_patients']} virtual "
        f"patients, {se['n_feasible']} within the limits): best "
        + ", ".join(f"{k} {v:.0f} mg" for k, v in (se["best"] or {}).items())
        + f" ({se['best_value']:.1f} mg/week)",
        highlight=False,
    )
    ch = iv["chosen"]
    if ch is not None:
        phases = "; ".join(
            f"{p['name']} {p['start'] / 24:g}-{p['end'] / 24:g} d" for p in ch["phases"]
        )
        console.print(f"Chosen: {ch['protocol']} — {phases}", highlight=False)
        for lim in ch["limits"]:
            console.print(
                f"  {lim['name']}: P = {lim['probability']:.3f} (allowed "
                f"{lim['max_probability']:.2f}) " + ("held" if lim["met"] else "BROKEN")
            )
    exps = Table(title=f"Experiments recorded in {iv['store']}")
    for col in ("id", "kind", "label", "status"):
        exps.add_column(col, overflow="fold")
    for e in iv["experiments"]:
        exps.add_row(e["id"], e["kind"], e["label"], e["status"])
    console.print(exps)
    console.print(f"  hemolab experiments list --store {iv['store']} (show, rerun ID)")


def _plot_samples(folder: Path) -> Path:
    """Hb of samples A and D over 180 days, untreated (dashed) and treated (solid)."""
    import pandas as pd

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for arm, style in (("untreated", "--"), ("treated", "-")):
        frame = pd.read_parquet(folder / f"samples-{arm}.parquet")
        hb = frame[frame["variable"] == "Hb"]
        for pid, who, colour in zip(
            sorted(set(hb["patient_id"])), "AD", ("C3", "C0"), strict=False
        ):
            mask = np.asarray(hb["patient_id"] == pid, dtype=bool)
            t = np.asarray(hb["time"], dtype=np.float64)[mask]
            order = np.argsort(t)
            y = np.asarray(hb["value"], dtype=np.float64)[mask][order]
            ax.plot(t[order], y, style, color=colour, label=f"{who} {arm}")
    for t in (90, 104, 118):
        ax.axvline(t, color="0.6", lw=0.8)
    ax.axhspan(12.0, 17.5, color="C2", alpha=0.08, label="normal Hb")
    ax.set_xlabel("day")
    ax.set_ylabel("Hb (g/dL)")
    ax.set_title("Sample A's cells mixed into D (grey: mixes), with an ESA in D", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.text(0.99, 0.01, "research use only", ha="right", fontsize=6, color="0.5")
    fig.tight_layout()
    path = folder / "samples.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_population(result: Any, typical: Any, path: Path) -> Path:
    plt = _pyplot()
    days = result.time / 24.0
    band = result.bands["ANC"]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    ax.fill_between(days, band[0.05], band[0.95], color="tab:blue", alpha=0.25, label="90 % band")
    ax.plot(days, band[0.5], color="tab:blue", lw=1.8, label="median")
    ax.plot(
        typical.time[0] / 24.0,
        typical.variable("ANC")[0],
        color="black",
        lw=1.0,
        ls=":",
        label="typical patient (BSA 1.8 m²)",
    )
    for y, label in ((1.5, "grade 2"), (1.0, "grade 3"), (0.5, "grade 4")):
        ax.axhline(y, color="grey", ls="--", lw=0.8)
        ax.text(days[-1], y, f" {label}", va="center", fontsize=8, color="grey")
    for k in range(N_CYCLES):
        ax.axvline(k * 21, color="tab:red", alpha=0.3, lw=1)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("ANC (10⁹/L)")
    ax.set_title(
        f"Docetaxel 100 mg/m² q21d × 4, {result.n} virtual patients (Friberg 2002, Kloft IIV)"
        " — research use only",
        fontsize=10,
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_library(runs: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    cols = 3
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.0 * rows), dpi=100, squeeze=False)
    for ax, r in zip(axes.ravel(), runs, strict=False):
        ax.plot(r["time"], r["values"], color="tab:purple", lw=1.4)
        if r["log_scale"]:
            ax.set_yscale("log")
        ax.set_title(r["model"] + (" (experimental)" if r["experimental"] else ""), fontsize=9)
        ax.set_xlabel("time (days)", fontsize=8)
        ax.set_ylabel(f"{r['observable']} [{r['unit']}]", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(runs) :]:
        ax.axis("off")
    fig.suptitle("hemolab library models under their typical regimens — research use only")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

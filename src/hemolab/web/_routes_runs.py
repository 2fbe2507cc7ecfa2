"""Protocols (an example or a store's protocol file run over a virtual population, as a job),
the jobs page (progress, cancel), experiments (list, one, two side by side) and reports
(list, open, download)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from hemolab.web._context import Analyst, Viewer, actor_of, web
from hemolab.web._guard import REPORT_CSP
from hemolab.web._metrics import result_metrics
from hemolab.web._users import Session

router = APIRouter()

_EXPERIMENT = re.compile(r"E\d{8}T\d{6}-[0-9a-f]{6}")
_REPORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.html")


def find_protocols(*folders: Path) -> dict[str, Path]:
    """Runnable protocol files (library model, no placeholders) by file name."""
    from hemolab._errors import HemolabError
    from hemolab.library import list_models
    from hemolab.protocols import protocol_model
    from hemolab.protocols._read import placeholders

    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            try:
                if protocol_model(path) in list_models() and not placeholders(path):
                    found.setdefault(path.name, path.resolve())
            except (HemolabError, ValueError, OSError):
                continue
    return found


# protocols ---------------------------------------------------------------------------------
@router.get("/api/protocols", summary="Protocol files that can be run")
def protocols(request: Request, session: Viewer) -> list[dict[str, Any]]:
    import tomllib

    out = []
    for name, path in web(request).protocols.items():
        head = tomllib.loads(path.read_text()).get("protocol", {})
        pop = tomllib.loads(path.read_text()).get("population", {})
        out.append({"name": name, "title": head.get("name", name), "model": head.get("model"),
                    "population": pop.get("n"), "seed": pop.get("seed")})  # fmt: skip
    return out


@router.get("/protocols", include_in_schema=False)
def protocols_page(request: Request, session: Analyst) -> Response:
    return web(request).templates.TemplateResponse(
        request, "protocols.html", {"session": session, "protocols": protocols(request, session)}
    )


class RunRequest(BaseModel):
    protocol: str = Field(max_length=200)
    population: int = Field(default=100, ge=1, le=5000)
    seed: int = Field(default=1, ge=0, le=2**31)


@router.post("/api/protocols/run", summary="Run a protocol over a virtual population (a job)")
def run_protocol(body: RunRequest, request: Request, session: Analyst) -> dict[str, Any]:
    state = web(request)
    path = state.protocols.get(body.protocol)  # a name from the list, never a path
    if path is None:
        raise HTTPException(404, "no such protocol")
    args = {"protocol": str(path), "population": body.population, "seed": body.seed,
            "store": str(state.store_dir)}  # fmt: skip
    try:
        job = state.jobs.submit(session.user.name, "protocol", f"run {body.protocol} "
                                f"(n={body.population}, seed {body.seed})",
                                "hemolab.web._workers:run_protocol_file", args)  # fmt: skip
    except LookupError as exc:
        raise HTTPException(429, str(exc)) from None
    return job.to_json()


# jobs --------------------------------------------------------------------------------------
@router.get("/api/jobs", summary="Your jobs with their progress")
def jobs(request: Request, session: Viewer) -> list[dict[str, Any]]:
    return [j.to_json() for j in web(request).jobs.visible(session.user)]


def _job(request: Request, session: Session, job_id: str) -> Any:
    job = web(request).jobs.get(job_id[:64], session.user)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


@router.get("/api/jobs/{job_id}", summary="A job, with its result once done")
def job(job_id: str, request: Request, session: Viewer) -> dict[str, Any]:
    j = _job(request, session, job_id)
    # a result (a patient's curves) goes to the job's owner only, an admin sees the status
    return j.to_json(with_result=j.owner == session.user.name)


@router.post("/api/jobs/{job_id}/cancel", summary="Cancel a running job")
def cancel(job_id: str, request: Request, session: Analyst) -> dict[str, Any]:
    j = _job(request, session, job_id)
    stopped = web(request).jobs.cancel(j)
    return j.to_json() | {"cancelled": stopped}


@router.get("/jobs", include_in_schema=False)
def jobs_page(request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(request, "jobs.html", {"session": session})


@router.get("/jobs/{job_id}", include_in_schema=False)
def job_page(job_id: str, request: Request, session: Viewer) -> Response:
    j = _job(request, session, job_id)
    return web(request).templates.TemplateResponse(
        request, "job.html", {"session": session, "job": j.to_json()}
    )


# experiments -------------------------------------------------------------------------------
def _experiments(request: Request) -> Any:
    from hemolab.experiments import ExperimentStore

    if not (web(request).store_dir / "experiments.duckdb").is_file():
        return None
    return ExperimentStore(web(request).store_dir)


def _visible(request: Request, session: Session, record: Any) -> bool:
    """An experiment made from stored patients' data is theirs: the user sees it only when
    every one of them is granted (an admin too: grants are the rule for everyone)."""
    from hemolab.experiments import patients_of

    patients = patients_of(record)
    return not patients or patients <= set(web(request).users.granted(session.user.name))


def _audit_use(request: Request, session: Session, record: Any, action: str) -> None:
    from hemolab.audit import AuditLog
    from hemolab.experiments import patients_of

    for patient in sorted(patients_of(record)):
        AuditLog(web(request).store_dir).append(
            actor_of(request, session), action, patient, f"experiment {record.id}"
        )


def _record(request: Request, session: Session, experiment_id: str) -> dict[str, Any]:
    from hemolab.experiments import ExperimentError

    store = _experiments(request)
    if store is None or not _EXPERIMENT.fullmatch(experiment_id):
        raise HTTPException(404, "no such experiment")
    try:
        record = store.get(experiment_id)
    except ExperimentError:
        raise HTTPException(404, "no such experiment") from None
    if not _visible(request, session, record):  # the same answer as an unknown id
        _audit_use(request, session, record, "denied read experiment")
        raise HTTPException(404, "no such experiment")
    _audit_use(request, session, record, "read experiment")
    doc = record.to_json()
    doc["metrics"] = {name: result_metrics(f.path) for name, f in record.results.items()
                      if name.endswith((".parquet", ".pq"))}  # fmt: skip
    for f in doc.get("inputs", []) + doc.get("results", []):
        f.pop("path", None)  # the server's file layout is nobody's business
    return doc


@router.get("/api/experiments", summary="The experiments recorded in the store")
def experiments(request: Request, session: Viewer) -> list[dict[str, Any]]:
    store = _experiments(request)
    if store is None:
        return []
    return [{"id": r.id, "kind": r.kind, "label": r.label, "status": r.status,
             "started": r.to_json()["started"], "model": r.model_name, "actor": r.actor,
             "n_results": len(r.results)} for r in store.list()
            if _visible(request, session, r)]  # fmt: skip


@router.get("/api/experiments/{experiment_id}", summary="One experiment's record")
def experiment(experiment_id: str, request: Request, session: Viewer) -> dict[str, Any]:
    return _record(request, session, experiment_id)


@router.get("/experiments", include_in_schema=False)
def experiments_page(request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(
        request, "experiments.html",
        {"session": session, "experiments": experiments(request, session)},
    )  # fmt: skip


def _flat(doc: Any, prefix: str = "") -> dict[str, str]:
    """``a.b.c -> value`` lines of a JSON document, for a side-by-side table."""
    if isinstance(doc, dict):
        out: dict[str, str] = {}
        for k, v in doc.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    if isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc):
        out = {}
        for k, v in enumerate(doc):
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): "" if doc is None else str(doc)}


@router.get("/experiments/compare", include_in_schema=False)
def compare_page(request: Request, session: Viewer, a: str = "", b: str = "") -> Response:
    left, right = _record(request, session, a), _record(request, session, b)
    fa, fb = _flat(_comparable(left)), _flat(_comparable(right))
    keys = list(dict.fromkeys([*fa, *fb]))  # the record's order: what, then how, then files
    rows = [(k, fa.get(k, "—"), fb.get(k, "—")) for k in keys]
    return web(request).templates.TemplateResponse(
        request, "compare.html", {"session": session, "a": left, "b": right, "rows": rows}
    )


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in ("kind", "label", "status", "started", "ended", "model",
                                     "seed", "solver", "spec", "metrics", "versions", "error",
                                     "parent", "results", "inputs")}  # fmt: skip


# reports -----------------------------------------------------------------------------------
def _reports_dir(request: Request) -> Path:
    return web(request).store_dir / "reports"


def _report_visible(request: Request, session: Session, path: Path) -> bool:
    """A report shows its experiments: the user must be able to see every one of them."""
    known = {e["id"] for e in experiments(request, session)}
    ids = set(_EXPERIMENT.findall(path.read_text(encoding="utf-8", errors="replace")))
    return ids <= known


def _report(request: Request, session: Session, name: str) -> Path:
    folder = _reports_dir(request)
    if not _REPORT.fullmatch(name):
        raise HTTPException(404, "no such report")
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or not path.is_file():
        raise HTTPException(404, "no such report")
    if not _report_visible(request, session, path):
        raise HTTPException(404, "no such report")
    return path


class ReportRequest(BaseModel):
    experiments: list[str] = Field(min_length=1, max_length=10)


@router.post("/api/reports", summary="Write a report of experiments (a job)")
def write_report(body: ReportRequest, request: Request, session: Analyst) -> dict[str, Any]:
    import secrets
    import time

    state = web(request)
    known = {e["id"] for e in experiments(request, session)}
    if not all(_EXPERIMENT.fullmatch(e) and e in known for e in body.experiments):
        raise HTTPException(404, "no such experiment")
    folder = _reports_dir(request)
    folder.mkdir(exist_ok=True)
    name = f"report-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.html"
    actor = actor_of(request, session)
    args = {"store": str(state.store_dir), "experiments": body.experiments,
            "out": str(folder / name), "actor": [actor.user, actor.via, actor.origin]}  # fmt: skip
    label = f"report of {len(body.experiments)} experiment(s)"
    try:
        job = state.jobs.submit(session.user.name, "report", label,
                                "hemolab.web._workers:write_report_file", args)  # fmt: skip
    except LookupError as exc:
        raise HTTPException(429, str(exc)) from None
    return job.to_json()


@router.get("/api/reports", summary="Report files of the store")
def reports(request: Request, session: Viewer) -> list[dict[str, Any]]:
    folder = _reports_dir(request)
    files = sorted(folder.glob("*.html")) if folder.is_dir() else []
    return [{"name": f.name, "bytes": f.stat().st_size, "modified": f.stat().st_mtime}
            for f in files if _REPORT.fullmatch(f.name)
            and _report_visible(request, session, f)]  # fmt: skip


@router.get("/reports", include_in_schema=False)
def reports_page(request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(
        request, "reports.html", {"session": session, "reports": reports(request, session)}
    )


@router.get("/reports/{name}", include_in_schema=False)
def open_report(name: str, request: Request, session: Viewer) -> Response:
    response = FileResponse(_report(request, session, name), media_type="text/html")
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


@router.get("/api/reports/{name}/download", summary="Download a report file")
def download_report(name: str, request: Request, session: Viewer) -> Response:
    response = FileResponse(_report(request, session, name), media_type="text/html",
                            filename=name)  # fmt: skip
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response

"""``write_report``: the report of one or more experiments, as HTML (and PNG, PDF).

Everything is checked first (the output paths, the store, the experiments), then rendered
in memory, then written to temporary names and renamed into place: a failed report leaves
no partial file behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hemolab.audit import Actor, AuditLog
from hemolab.experiments import ExperimentStore, patients_of
from hemolab.reports._data import ExperimentData, ReportError, open_store, read_experiment
from hemolab.reports._figures import FigureSpec, figures_of

__all__ = ["Report", "check_outputs", "make_report", "save_report", "write_report"]


@dataclass(frozen=True)
class Report:
    """A report made in memory: its experiments with their figures, ready to write."""

    store: str
    experiments: tuple[tuple[ExperimentData, tuple[FigureSpec, ...]], ...]

    @property
    def figures(self) -> list[FigureSpec]:
        return [f for _, figs in self.experiments for f in figs]

    def png_names(self) -> list[str]:
        return [f"{i:02d}-{f.key}.png" for i, f in enumerate(self.figures, start=1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "experiments": [
                {
                    "id": d.record.id,
                    "kind": d.record.kind,
                    "status": d.record.status,
                    "figures": [f.title for f in figs],
                }
                for d, figs in self.experiments
            ],
            "figures": [f.title for f in self.figures],
        }


def _check_file(path: Path, option: str, suffixes: tuple[str, ...]) -> None:
    if path.is_dir():
        raise ReportError(f"{option} {str(path)!r} is a directory; give a file name in it")
    if path.suffix.lower() not in suffixes:
        raise ReportError(f"{option} {str(path)!r}: name it *{suffixes[0]}")
    if not path.parent.is_dir():
        raise ReportError(
            f"{option} {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first"
        )


def check_outputs(
    out: str | os.PathLike[str],
    png_dir: str | os.PathLike[str] | None = None,
    pdf: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`ReportError` unless the report's files can be written where asked:
    ``out`` a ``*.html`` file name (not a directory) in an existing folder, likewise ``pdf``
    (``*.pdf``); ``png_dir`` a folder, or a new one in an existing folder."""
    out = Path(out)
    png_dir = None if png_dir is None else Path(png_dir)
    pdf = None if pdf is None else Path(pdf)
    _check_file(out, "--out", (".html", ".htm"))
    if pdf is not None:
        _check_file(pdf, "--pdf", (".pdf",))
    if png_dir is not None:
        if png_dir.exists() and not png_dir.is_dir():
            raise ReportError(f"--png {str(png_dir)!r} is a file; give a folder")
        if not png_dir.parent.is_dir():
            raise ReportError(
                f"--png {str(png_dir)!r}: folder {str(png_dir.parent)!r} does not exist"
            )


def make_report(
    store: ExperimentStore | str | os.PathLike[str],
    experiment_ids: Sequence[str],
    *,
    actor: Actor | None = None,
) -> Report:
    """Read the experiments (in the order given) and build their figures.

    Raises :class:`ReportError` when there is no id, an id is repeated, or no experiment
    has anything to draw (e.g. the only one failed); an unknown id is an
    :class:`~hemolab.experiments.ExperimentError` naming the id and the store.
    """
    ids = list(experiment_ids)
    if not ids:
        raise ReportError("give at least one experiment id (hemolab experiments list shows them)")
    seen = {i for i in ids if ids.count(i) > 1}
    if seen:
        raise ReportError(f"experiment {sorted(seen)[0]} is given twice; give each id once")
    st = store if isinstance(store, ExperimentStore) else open_store(store)
    experiments = []
    for eid in ids:
        data = read_experiment(st, eid)
        for patient in sorted(patients_of(data.record)):  # a patient's data: on the trail
            AuditLog(st.path).append(actor or Actor.cli(), "report", patient, f"experiment {eid}")
        experiments.append((data, tuple(figures_of(data))))
    if not any(figs for _, figs in experiments):
        problems = [
            f"{d.record.id} is {d.record.status}"
            + (f" ({d.record.error})" if d.record.error else "")
            if d.record.status != "complete"
            else f"{d.record.id} ({d.record.kind}) has no results to draw"
            for d, _ in experiments
        ]
        raise ReportError(f"nothing to report: {'; '.join(problems)}")
    return Report(str(st.path), tuple(experiments))


def write_report(
    store: ExperimentStore | str | os.PathLike[str],
    experiment_ids: Sequence[str] | str,
    out: str | os.PathLike[str],
    *,
    png_dir: str | os.PathLike[str] | None = None,
    pdf: str | os.PathLike[str] | None = None,
    actor: Actor | None = None,
) -> Path:
    """Write the report of ``experiment_ids`` (a story, in the order given) to ``out``.

    One self-contained HTML file (plotly.js inlined, no network needed to open it) with
    interactive figures per experiment and the provenance of each: experiment id, command,
    model name and hash, inputs and results with their SHA-256, seed, versions and times.
    Every report carries the label "research use — not for clinical decisions".

    Parameters
    ----------
    store
        The experiment store (a directory that already holds one, or an open store).
    experiment_ids
        One id or several.
    out
        The HTML file (``*.html``); its folder must exist.

    Other parameters
    ----------------
    png_dir
        Also write one PNG per figure into this folder (created if its parent exists).
    pdf
        Also write one PDF with a page per figure.
    actor
        Who reads (default: the OS user): an experiment made from a stored patient's data
        goes on the store's audit trail under this actor.

    Returns
    -------
    The path of the HTML file.

    Raises
    ------
    ReportError
        Bad output path, not a store, nothing to draw.
    ExperimentError
        An unknown experiment id (the message names it and the store).

    Examples
    --------
    >>> import hemolab as hl
    >>> hl.write_report("hemolab-store", ["E20261128T015425-bc4ac2"], "report.html")
    ... # doctest: +SKIP
    PosixPath('report.html')
    """
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    check_outputs(out, png_dir, pdf)
    report = make_report(store, ids, actor=actor)
    return save_report(report, out, png_dir=png_dir, pdf=pdf)["html"]


def save_report(
    report: Report,
    out: str | os.PathLike[str],
    *,
    png_dir: str | os.PathLike[str] | None = None,
    pdf: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Render ``report`` and write its files; return ``{"html": path, "png": [paths],
    "pdf": path or None}``."""
    from hemolab.reports._html import to_html
    from hemolab.reports._print import to_pdf, to_png

    out_p = Path(out)
    png_p = None if png_dir is None else Path(png_dir)
    pdf_p = None if pdf is None else Path(pdf)
    check_outputs(out_p, png_p, pdf_p)
    page = to_html(report.experiments, store=report.store).encode("utf-8")
    pngs = [to_png(f) for f in report.figures] if png_p is not None else []
    pdf_bytes = to_pdf(report.figures) if pdf_p is not None else None
    staged: list[tuple[Path, Path]] = []  # (temporary, final)
    tmp_dirs: list[Path] = []
    try:
        staged.append((_stage(out_p, page), out_p))
        if pdf_p is not None and pdf_bytes is not None:
            staged.append((_stage(pdf_p, pdf_bytes), pdf_p))
        png_paths: list[Path] = []
        if png_p is not None:
            folder = Path(
                tempfile.mkdtemp(dir=png_p.parent, prefix=f".{png_p.name}.", suffix=".tmp")
            )
            tmp_dirs.append(folder)
            for name, data in zip(report.png_names(), pngs, strict=True):
                (folder / name).write_bytes(data)
                staged.append((folder / name, png_p / name))
                png_paths.append(png_p / name)
            png_p.mkdir(exist_ok=True)
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report: {exc.strerror or exc} ({exc.filename})"
        ) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for folder in tmp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
    return {"html": out_p, "png": png_paths, "pdf": pdf_p}


def _stage(final: Path, data: bytes) -> Path:
    """``data`` in a new hidden file beside ``final`` (the umask's permissions, unlike
    ``mkstemp``'s 0600), to be renamed into place."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp

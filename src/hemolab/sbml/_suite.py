"""The SBML Test Suite runner: case folders, the pass criterion, and a parallel driver.

A case folder ``NNNNN/`` of the suite's ``cases/semantic/`` holds the model
(``NNNNN-sbml-l3v2.xml``, or an older level), ``NNNNN-settings.txt`` (output grid, the variables
to compare, tolerances), ``NNNNN-results.csv`` (the expected values) and ``NNNNN-model.m`` (the
description, with ``componentTags`` and ``testTags``). A case passes when, at every output time
and for every listed variable, ``|actual - expected| <= absolute + relative * |expected|``;
NaN must meet NaN and an infinity the same infinity.

:func:`run_suite` simulates cases with ``simulate(case) -> DataFrame`` (by default
``hemolab.sbml._simulate_case.simulate_case``) and judges them with :func:`compare`. JAX must
never be forked: with ``workers > 1`` the cases run in *spawned* processes, in contiguous
batches so that neighbouring cases (which often share a model structure) reuse a worker's
compiled models.

Two irregularities of the suite's own files are handled here: some ``results.csv`` headers say
``Time`` or carry spaces after the commas, and case 01820 has variables named ``time``,
``Time`` and ``TIME`` (so the expected table has two columns labelled ``time``; the first is
the time). :func:`compare` therefore matches columns by label *in order of occurrence*: the
first ``time`` column is the time, a second one is the variable ``time``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import multiprocessing
import os
import pickle
import re
import signal
import threading
import time as _time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hemolab._errors import HemolabError, UnsupportedError

__all__ = [
    "CaseResult",
    "CaseSettings",
    "SuiteCase",
    "SuiteReport",
    "compare",
    "find_cases",
    "load_case",
    "read_ids",
    "run_suite",
]

Status = Literal["passed", "failed", "unsupported"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "unsupported")

#: Model files in order of preference (the newest SBML level/version first).
MODEL_SUFFIXES = ("-sbml-l3v2.xml", "-sbml-l3v1.xml", "-sbml-l2v4.xml")
DEFAULT_TIMEOUT = 120.0
_ID = re.compile(r"\d{5}")
_REQUIRED = ("start", "duration", "steps", "variables", "absolute", "relative")
_LISTS = ("variables", "amount", "concentration")
_MAX_REASON = 1000


# --- case folders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSettings:
    """``NNNNN-settings.txt``: the output grid, the compared variables and the tolerances.

    ``amount`` and ``concentration`` say which species are reported in which quantity; both
    are empty for cases that compare only parameters and compartments.
    """

    start: float
    duration: float
    steps: int
    variables: list[str]
    absolute: float
    relative: float
    amount: list[str] = field(default_factory=list)
    concentration: list[str] = field(default_factory=list)

    @property
    def times(self) -> np.ndarray:
        """The ``steps + 1`` output times, ``start + duration * k / steps``."""
        return self.start + self.duration * np.arange(self.steps + 1, dtype=np.float64) / self.steps

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> CaseSettings:
        """Parse a settings file.

        Raises
        ------
        HemolabError
            A line that is not ``key: value``, a key given twice, a missing key, a value that
            is not a number (or not a valid one); the message names the file and line.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise HemolabError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        raw: dict[str, tuple[str, int]] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if not sep or not key:
                raise HemolabError(f"{path}, line {lineno}: expected 'key: value', got {line!r}")
            if key in raw:
                raise HemolabError(
                    f"{path}, line {lineno}: {key!r} given twice (first on line {raw[key][1]})"
                )
            raw[key] = (value.strip(), lineno)
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise HemolabError(
                f"{path}: missing {', '.join(missing)} (need {', '.join(_REQUIRED)})"
            )

        def number(key: str, *, minimum: float, strict: bool = False) -> float:
            value, lineno = raw[key]
            try:
                x = float(value)
            except ValueError:
                raise HemolabError(
                    f"{path}, line {lineno}: {key} must be a number, got {value!r}"
                ) from None
            if not math.isfinite(x) or x < minimum or (strict and x == minimum):
                bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
                raise HemolabError(
                    f"{path}, line {lineno}: {key} must be finite and {bound}, got {value!r}"
                )
            return x

        def names(key: str) -> list[str]:
            if key not in raw:
                return []
            value, lineno = raw[key]
            items = [v.strip() for v in value.split(",")]
            out = [v for v in items if v]
            if len(out) != len(items) and out:
                raise HemolabError(f"{path}, line {lineno}: empty name in {key} list {value!r}")
            dup = sorted({v for v in out if out.count(v) > 1})
            if dup:
                raise HemolabError(f"{path}, line {lineno}: {key} lists {', '.join(dup)} twice")
            return out

        steps_text, steps_line = raw["steps"]
        try:
            steps = int(steps_text)
        except ValueError:
            raise HemolabError(
                f"{path}, line {steps_line}: steps must be an integer >= 1, got {steps_text!r}"
            ) from None
        if steps < 1:
            raise HemolabError(
                f"{path}, line {steps_line}: steps must be an integer >= 1, got {steps_text!r}"
            )
        start_text, start_line = raw["start"]
        try:
            start = float(start_text)
        except ValueError:
            start = math.nan
        if not math.isfinite(start):
            raise HemolabError(
                f"{path}, line {start_line}: start must be a finite number, got {start_text!r}"
            )
        lists = {k: names(k) for k in _LISTS}
        both = sorted(set(lists["amount"]) & set(lists["concentration"]))
        if both:
            raise HemolabError(
                f"{path}, line {raw['concentration'][1]}: {', '.join(both)} listed as both "
                "amount and concentration"
            )
        return cls(
            start=start,
            duration=number("duration", minimum=0.0, strict=True),
            steps=steps,
            variables=lists["variables"],
            absolute=number("absolute", minimum=0.0),
            relative=number("relative", minimum=0.0),
            amount=lists["amount"],
            concentration=lists["concentration"],
        )


@dataclass(frozen=True, eq=False)
class SuiteCase:
    """One case folder of the SBML Test Suite, parsed.

    ``expected`` has the column ``time`` first, then one column per settings variable in the
    settings' order (labels stripped; the suite's ``Time`` header is renamed). Use
    :attr:`expected_times` rather than ``expected["time"]``: in case 01820 a variable is named
    ``time`` too.
    """

    id: str
    folder: Path
    model_path: Path
    settings: CaseSettings
    expected: pd.DataFrame
    component_tags: list[str] = field(default_factory=list)
    test_tags: list[str] = field(default_factory=list)

    @property
    def expected_times(self) -> np.ndarray:
        """The output times of ``results.csv`` (its first column)."""
        return self.expected.iloc[:, 0].to_numpy(dtype=np.float64)

    @property
    def level(self) -> str:
        """The SBML level and version of :attr:`model_path`, e.g. ``"l3v2"``."""
        return self.model_path.name.removesuffix(".xml").rsplit("-", 1)[-1]


def _model_path(folder: Path, case_id: str) -> Path:
    for suffix in MODEL_SUFFIXES:
        p = folder / f"{case_id}{suffix}"
        if p.is_file():
            return p
    others = sorted(folder.glob(f"{case_id}-sbml-*.xml"))
    if others:
        return others[-1]  # highest level/version by name
    raise HemolabError(f"case folder {str(folder)!r} has no model file {case_id}-sbml-*.xml")


def _read_expected(path: Path, settings: CaseSettings) -> pd.DataFrame:
    """``results.csv`` as floats; the header checked against the settings' variables."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise HemolabError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not rows:
        raise HemolabError(
            f"{path}: empty, expected a header 'time,{','.join(settings.variables)}'"
        )
    header = [h.strip() for h in rows[0]]
    if header[0].lower() != "time" or header[1:] != settings.variables:
        raise HemolabError(
            f"{path}, line 1: header {','.join(header)!r} does not match the settings, "
            f"expected 'time,{','.join(settings.variables)}'"
        )
    data = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise HemolabError(
                f"{path}, line {i + 2}: {len(row)} fields, expected {len(header)} like the header"
            )
        for j, cell in enumerate(row):
            try:
                data[i, j] = float(cell)  # float() takes ' NaN', 'INF', '-INF', '1e-007'
            except ValueError:
                raise HemolabError(
                    f"{path}, line {i + 2}, column {header[j]}: {cell!r} is not a number"
                ) from None
    if len(data) != settings.steps + 1:
        raise HemolabError(
            f"{path}: {len(data)} rows of values, expected steps + 1 = {settings.steps + 1}"
        )
    # positional construction: labels may repeat (case 01820 has a variable named 'time')
    return pd.DataFrame(data, columns=pd.Index(["time", *header[1:]], dtype=object))


def _read_tags(path: Path) -> tuple[list[str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HemolabError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    tags: dict[str, list[str]] = {"componenttags": [], "testtags": []}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in tags:
            tags[key] = [t.strip() for t in value.split(",") if t.strip()]
    return tags["componenttags"], tags["testtags"]


def load_case(folder: str | os.PathLike[str]) -> SuiteCase:
    """Parse one case folder ``.../NNNNN/``.

    Parameters
    ----------
    folder
        The case folder; its name is the five-digit case id.

    Returns
    -------
    SuiteCase

    Raises
    ------
    HemolabError
        A missing file, malformed settings, or a ``results.csv`` whose header or row count
        disagrees with the settings; the message names the file (and line).
    """
    folder = Path(folder)
    case_id = folder.name
    if not _ID.fullmatch(case_id):
        raise HemolabError(f"{str(folder)!r} is not a case folder (its name must be 5 digits)")
    if not folder.is_dir():
        raise HemolabError(f"case folder {str(folder)!r} does not exist")
    settings = CaseSettings.read(folder / f"{case_id}-settings.txt")
    expected = _read_expected(folder / f"{case_id}-results.csv", settings)
    model_m = folder / f"{case_id}-model.m"
    component_tags, test_tags = _read_tags(model_m) if model_m.is_file() else ([], [])
    return SuiteCase(
        id=case_id,
        folder=folder,
        model_path=_model_path(folder, case_id),
        settings=settings,
        expected=expected,
        component_tags=component_tags,
        test_tags=test_tags,
    )


def read_ids(path: str | os.PathLike[str]) -> list[str]:
    """Case ids from a file: one a line, ``#`` starts a comment; ``1`` means ``00001``.

    Raises
    ------
    HemolabError
        The file cannot be read, or a line is not a case id (file and line named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HemolabError(f"cannot read ids file {str(path)!r}: {exc.strerror or exc}") from None
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not item.isdigit() or len(item) > 5:
            raise HemolabError(
                f"{path}, line {lineno}: {item!r} is not a case id (up to 5 digits, e.g. 00001)"
            )
        out.append(item.zfill(5))
    return out


def find_cases(
    cases_dir: str | os.PathLike[str],
    ids: str | os.PathLike[str] | Iterable[str] | None = None,
) -> list[SuiteCase]:
    """The case folders ``NNNNN/`` under ``cases_dir``, parsed, in id order.

    Parameters
    ----------
    cases_dir
        A folder of case folders (the suite's ``cases/semantic/``).
    ids
        Only these cases: a path to an ids file (see :func:`read_ids`) or an iterable of ids.

    Raises
    ------
    HemolabError
        ``cases_dir`` is not a folder or holds no cases, an id is not there (all such ids are
        listed), or a case folder is malformed.
    """
    root = Path(cases_dir)
    if not root.is_dir():
        raise HemolabError(f"cases folder {str(root)!r} does not exist or is not a folder")
    available = {p.name: p for p in root.iterdir() if _ID.fullmatch(p.name) and p.is_dir()}
    if ids is None:
        wanted = sorted(available)
        if not wanted:
            raise HemolabError(f"no case folders (NNNNN/) in {str(root)!r}")
    else:
        if isinstance(ids, str | os.PathLike):
            ids = read_ids(ids)
        wanted = sorted({str(i).strip().zfill(5) for i in ids})
        unknown = [i for i in wanted if i not in available]
        if unknown:
            shown = ", ".join(unknown[:50]) + (
                f" and {len(unknown) - 50} more" if len(unknown) > 50 else ""
            )
            raise HemolabError(f"{len(unknown)} case id(s) not found in {str(root)!r}: {shown}")
        if not wanted:
            raise HemolabError("the ids list is empty")
    return [load_case(available[i]) for i in wanted]


# --- the pass criterion ------------------------------------------------------------------------


def _columns(actual: pd.DataFrame, labels: Sequence[str]) -> tuple[list[int], list[str]]:
    """Positions in ``actual`` of ``labels``, a repeated label matched in order of occurrence."""
    slots: dict[Any, deque[int]] = {}
    for pos, label in enumerate(actual.columns):
        slots.setdefault(label, deque()).append(pos)
    found: list[int] = []
    missing: list[str] = []
    for label in labels:
        queue = slots.get(label)
        if queue:
            found.append(queue.popleft())
        else:
            missing.append(label)
    return found, missing


def _g(x: float) -> str:
    return f"{x:.10g}"


def compare(case: SuiteCase, actual: pd.DataFrame) -> str | None:
    """Judge a simulation of ``case`` by the suite's criterion.

    Parameters
    ----------
    case
        The case (its settings and expected results).
    actual
        A ``time`` column and one column per settings variable, one row per output time
        (extra columns are ignored). Labels that repeat are matched in order: the first
        ``time`` is the time, a second ``time`` the variable of that name.

    Returns
    -------
    str or None
        None when every value is within ``absolute + relative * |expected|`` (NaN meeting
        NaN, an infinity the same infinity); else a one-line reason: missing columns, a wrong
        number of rows or output times, or the earliest failing time with its first failing
        variable, the actual and expected values and the tolerance.
    """
    if not isinstance(actual, pd.DataFrame):
        return f"the simulation returned {type(actual).__name__}, not a pandas DataFrame"
    s = case.settings
    labels = ["time", *s.variables]
    found, missing = _columns(actual, labels)
    if missing:
        return f"missing column(s) {', '.join(missing)} in the simulation output"
    expected = case.expected.to_numpy(dtype=np.float64)
    if len(actual) != len(expected):
        return (
            f"{len(actual)} output rows, expected {len(expected)} (times {_g(s.start)} to "
            f"{_g(s.start + s.duration)} in {s.steps} steps)"
        )
    try:
        values = actual.iloc[:, found].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [
            labels[k]
            for k, pos in enumerate(found)
            if not pd.api.types.is_numeric_dtype(actual.iloc[:, pos])
        ]
        return f"non-numeric column(s) {', '.join(bad) or '?'} in the simulation output"
    t_act, t_exp = values[:, 0], expected[:, 0]
    # the suite rounds some times (case 00953: 0.0999001 for 100/1001); a wrong grid is off by
    # a sizeable fraction of a step
    t_tol = 1e-6 * s.duration / s.steps
    with np.errstate(invalid="ignore"):
        t_bad = ~(np.abs(t_act - t_exp) <= t_tol)
    if t_bad.any():
        k = int(np.argmax(t_bad))
        return f"output time {k} is {_g(t_act[k])}, expected {_g(t_exp[k])}"
    a, e = values[:, 1:], expected[:, 1:]
    tol = s.absolute + s.relative * np.abs(e)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.where(np.isfinite(e), np.abs(a - e) <= tol, (a == e) | (np.isnan(a) & np.isnan(e)))
    if ok.all():
        return None
    rows, cols = np.nonzero(~ok)  # row-major: the earliest time, then settings order
    i, j = int(rows[0]), int(cols[0])
    n_bad, n_all = int(rows.size), int(ok.size)
    return (
        f"{s.variables[j]} at time {_g(t_exp[i])}: actual {_g(a[i, j])}, expected {_g(e[i, j])}, "
        f"tolerance {tol[i, j]:.3g} (absolute {s.absolute:g} + relative {s.relative:g}); "
        f"{n_bad} of {n_all} values fail"
    )


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    """The verdict on one case: ``passed``, ``failed`` (with why) or ``unsupported``."""

    id: str
    status: Status
    reason: str | None
    seconds: float


@dataclass(frozen=True)
class SuiteReport:
    """The results of a run, in case order, with counts and the ``--json`` document."""

    results: list[CaseResult]
    seconds: float = 0.0

    def _count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def unsupported(self) -> int:
        return self._count("unsupported")

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def pass_rate(self) -> float:
        """``passed / total`` (0.0 for an empty run)."""
        return self.passed / self.total if self.results else 0.0

    def to_json(self) -> dict[str, Any]:
        """``{"passed", "failed", "unsupported", "cases": {id: {"status", "reason"}}}``."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "unsupported": self.unsupported,
            "cases": {r.id: {"status": r.status, "reason": r.reason} for r in self.results},
        }

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """One row per case: ``id,status,reason,seconds``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "status", "reason", "seconds"])
            for r in self.results:
                w.writerow([r.id, r.status, r.reason or "", f"{r.seconds:.3f}"])


def _default_simulate(case: SuiteCase) -> pd.DataFrame:
    """hemolab's SBML import, imported here (in the worker) so the parent needs no JAX."""
    from hemolab.sbml._simulate_case import simulate_case

    return simulate_case(case)


class _CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that ``except Exception`` does not swallow it."""


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; main thread, no other timer in use).

    Soft: Python checks signals between bytecodes, so a long XLA compile or a long compiled
    solve is interrupted only when it returns to Python.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable or seconds is None:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _CaseTimeout

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"


def _run_case(
    case: SuiteCase, simulate: Callable[[SuiteCase], pd.DataFrame], timeout: float | None
) -> CaseResult:
    t0 = _time.perf_counter()
    status: Status
    timed_out = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _alarm(timeout):
                actual = simulate(case)
            reason = compare(case, actual)
            status = "passed" if reason is None else "failed"
        except _CaseTimeout:
            status, reason, timed_out = "failed", f"timed out after {timeout:g} s", True
        except UnsupportedError as exc:  # UnsupportedSBMLError included
            status, reason = "unsupported", _one_line(str(exc) or type(exc).__name__)
        except Exception as exc:
            status, reason = "failed", _one_line(f"{type(exc).__name__}: {exc}")
    seconds = _time.perf_counter() - t0
    if timeout is not None and seconds > timeout and not timed_out and status != "unsupported":
        status, reason = (
            "failed",
            f"took {seconds:.1f} s, over the per-case timeout of {timeout:g} s",
        )
    if status == "failed" and caught:
        reason = _one_line(f"{reason} (warning: {caught[0].message})")
    return CaseResult(case.id, status, reason, seconds)


def _run_batch(
    cases: Sequence[SuiteCase],
    simulate: Callable[[SuiteCase], pd.DataFrame],
    timeout: float | None,
) -> list[CaseResult]:
    """A worker's job: the cases in order, in this process (its compiled models reused)."""
    return [_run_case(c, simulate, timeout) for c in cases]


def _ping(simulate: Callable[[SuiteCase], pd.DataFrame]) -> int:
    """Nothing: receiving ``simulate`` proves a worker can import it."""
    return os.getpid()


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _crashed(case: SuiteCase, exc: BaseException) -> CaseResult:
    return CaseResult(case.id, "failed", _one_line(f"the worker process died ({exc})"), 0.0)


def _isolate(
    cases: Sequence[SuiteCase],
    simulate: Callable[[SuiteCase], pd.DataFrame],
    timeout: float | None,
    record: Callable[[list[CaseResult]], None],
) -> None:
    """Rerun the cases that were in flight when a worker died, one at a time, to find the
    one that kills its process (it fails; the others get their real verdict)."""
    ctx = multiprocessing.get_context("spawn")
    queue = deque(cases)
    while queue:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            while queue:
                case = queue.popleft()
                try:
                    record(pool.submit(_run_batch, [case], simulate, timeout).result())
                except BrokenProcessPool as exc:
                    record([_crashed(case, exc)])
                    break  # a fresh process for the rest


def run_suite(
    cases: Sequence[SuiteCase],
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    simulate: Callable[[SuiteCase], pd.DataFrame] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    batch_size: int | None = None,
) -> SuiteReport:
    """Simulate and judge every case.

    Parameters
    ----------
    cases
        From :func:`find_cases`, in id order (neighbours often share a model structure).

    Other Parameters
    ----------------
    workers
        Spawned worker processes (JAX is never forked); ``1`` runs in this process.
    progress
        ``progress(done, total)`` after each batch (each case with ``workers=1``).
    simulate
        ``simulate(case) -> DataFrame`` with a ``time`` column and one per settings variable;
        default hemolab's SBML import. With ``workers > 1`` it must be picklable (a
        module-level function).
    timeout
        Seconds per case (None: no limit). A slower case fails. The limit is soft: it is
        enforced by SIGALRM in the process running the case, which Python handles only between
        bytecodes, so a long XLA compile or compiled solve overruns it and fails afterwards.
    batch_size
        Contiguous cases per job; default ``min(50, ceil(len(cases) / workers))``.

    Returns
    -------
    SuiteReport
        One result per case, in the order of ``cases``: ``passed``, ``failed`` (with a
        reason: the comparison, or the exception's type and message) or ``unsupported``
        (``UnsupportedError``, which includes ``UnsupportedSBMLError``). A case whose worker
        process dies fails with that reason; the other cases are rerun.

    Raises
    ------
    HemolabError
        ``workers`` or ``batch_size`` < 1, or ``timeout`` <= 0.
    """
    if workers < 1:
        raise HemolabError(f"workers must be >= 1, got {workers}")
    if batch_size is not None and batch_size < 1:
        raise HemolabError(f"batch_size must be >= 1, got {batch_size}")
    if timeout is not None and not timeout > 0:
        raise HemolabError(f"timeout must be > 0 seconds (or None), got {timeout}")
    fn = simulate if simulate is not None else _default_simulate  # read now: tests patch it
    cases = list(cases)
    total = len(cases)
    t0 = _time.perf_counter()
    done: dict[str, CaseResult] = {}

    def record(results: list[CaseResult]) -> None:
        for r in results:
            done[r.id] = r
        if progress is not None:
            progress(len(done), total)

    if progress is not None:
        progress(0, total)
    if workers == 1 or total <= 1:
        for case in cases:
            record(_run_batch([case], fn, timeout))
    else:
        try:
            pickle.dumps(fn)
        except Exception as exc:
            raise HemolabError(
                f"with workers > 1, simulate must be picklable (a module-level function); "
                f"{_name(fn)} is not ({type(exc).__name__}: {exc})"
            ) from None
        size = batch_size or max(1, min(50, math.ceil(total / workers)))
        _run_pool(cases, fn, timeout, workers, size, record)
    ordered = [done[c.id] for c in cases]
    return SuiteReport(ordered, seconds=_time.perf_counter() - t0)


def _run_pool(
    cases: list[SuiteCase],
    simulate: Callable[[SuiteCase], pd.DataFrame],
    timeout: float | None,
    workers: int,
    size: int,
    record: Callable[[list[CaseResult]], None],
) -> None:
    """Batches on ``workers`` spawned processes, at most one batch in flight per process, so
    that when a process dies only the batches in flight are suspects."""
    queue = deque(cases[i : i + size] for i in range(0, len(cases), size))
    ctx = multiprocessing.get_context("spawn")
    # the workers share the cores already: one XLA host device each (read when they start)
    os.environ.setdefault("HEMOLAB_HOST_DEVICES", "1")
    first = True
    while queue:
        suspects: list[SuiteCase] = []
        # a fresh worker per batch: every compiled model holds memory maps, and a long-lived
        # worker reaches the kernel's limit (vm.max_map_count) after ~200 models
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, max_tasks_per_child=1
        ) as pool:
            if first:  # a worker that cannot even load `simulate` would fail every case
                first = False
                try:
                    pool.submit(_ping, simulate).result()
                except BrokenProcessPool as exc:
                    raise HemolabError(
                        f"the worker processes cannot start or cannot load the simulate "
                        f"function {_name(simulate)} ({exc}); try workers=1 to see why"
                    ) from None
            running: dict[Future[list[CaseResult]], list[SuiteCase]] = {}
            while queue or running:
                while queue and len(running) < workers:
                    batch = queue.popleft()
                    running[pool.submit(_run_batch, batch, simulate, timeout)] = batch
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in finished:
                    batch = running.pop(fut)
                    try:
                        record(fut.result())
                    except BrokenProcessPool:
                        suspects.extend(batch)
                        broken = True
                if broken:  # the pool is unusable: the batches in flight that did not finish
                    wait(running)  # are suspects
                    for fut, batch in running.items():
                        if fut.exception() is None:
                            record(fut.result())
                        else:
                            suspects.extend(batch)
                    break
        if suspects:
            _isolate(suspects, simulate, timeout, record)

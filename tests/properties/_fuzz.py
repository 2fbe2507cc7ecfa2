"""Shared pieces of the reader fuzz tests (design note 031).

* ``FUZZ``: the Hypothesis settings profile of every fuzz test (deterministic, no deadline);
* ``NASTY``: words that break readers (empty, NaN, huge numbers, NUL, BOM, unicode, a planted
  identifier ``SECRET``...);
* ``mutated_text``: a strategy that mutates a seed text (cut, duplicate, swap lines or cells,
  replace a cell or a value with a nasty word, BOM, CRLF, other encodings) into bytes;
* ``check``: the contract — the reader returns a value or raises a ``HemolabError``, and no
  message, warning or ``repr`` carries the planted identifier.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, settings, strategies as st

from hemolab._errors import DatasetError, HemolabError
from tests._fuzz_counts import tried

T = TypeVar("T")

settings.register_profile(
    "hemolab-fuzz",
    deadline=None,
    derandomize=True,  # the same inputs on every run (CI and laptops alike)
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
FUZZ = settings.get_profile("hemolab-fuzz")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"

SECRET = "MRN-4471-SECRET"  # a patient identifier planted in data cells: never echoed
HUGE_INT = str(10**400)
NASTY: tuple[str, ...] = (
    "",
    " ",
    ".",
    "NA",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0",
    "1e400",
    "-1e400",
    "1e-400",
    "1e308",
    "18446744073709551617",
    HUGE_INT,
    "1_000",
    "0x1F",
    "\x00",
    "a\x00b",
    "\ufeff",
    "é",
    "ß",
    "😀",
    "\u202e",
    "\r",
    "\n",
    '"',
    "'",
    ",",
    ";",
    "#",
    "[",
    "{",
    "<",
    "&",
    "\\",
    "true",
    "null",
    SECRET,
    f"Patient/{SECRET}",
    "2024-03-05T08:30:00+01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-12:00",
    "2024-02-30T08:00:00Z",
    "2024-03-05",
    "10*9/L",
    "g/dL",
    "mmol/L",
    "10*999/L",
    "718-7",
    "sNaN",
)
# TOML values of every type (and a few that are no TOML at all)
TOML_VALUES: tuple[str, ...] = (
    '""',
    '"NaN"',
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1e400",
    "99999999999999999999",
    "-9223372036854775808",
    "9223372036854775807",
    "true",
    "[]",
    "{}",
    "[1, 2]",
    '["x", 1]',
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    f'"{SECRET}"',
    '"\\u0000"',
    '"😀"',
    '"21q"',
    '"-7d"',
    '"1e400d"',
    '"{"',
    '"{x}"',
    '"{1/0}"',
    "x",
)


@st.composite
def nasty_words(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.sampled_from(NASTY),
            st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
        )
    )


_CELL = re.compile(r"[^,\n]+|(?<=,)(?=,|\n|$)")
_TOML_VALUE = re.compile(r"^(\s*[\w.\"-]+\s*=\s*)(.+?)\s*$", re.M)


def _lines(text: str) -> list[str]:
    return text.split("\n")


@st.composite
def mutated_text(
    draw: st.DrawFn, seeds: Sequence[str], *, toml: bool = False, max_changes: int = 4
) -> bytes:
    """A seed after up to ``max_changes`` mutations, encoded (usually as UTF-8)."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, max_changes))):
        lines = _lines(text)
        n = len(lines)
        kind = draw(
            st.sampled_from(
                (
                    "cell",
                    "cell",
                    "value",
                    "cut line",
                    "duplicate line",
                    "swap lines",
                    "swap cells",
                    "drop cell",
                    "truncate",
                    "cut span",
                    "insert",
                )
            )
        )
        i = draw(st.integers(0, max(n - 1, 0)))
        if kind == "cell" or (kind == "value" and not toml):
            cells = list(_CELL.finditer(lines[i]))
            if cells:
                m = cells[draw(st.integers(0, len(cells) - 1))]
                lines[i] = lines[i][: m.start()] + draw(nasty_words()) + lines[i][m.end() :]
        elif kind == "value":
            values = list(_TOML_VALUE.finditer(text))
            if values:
                m = values[draw(st.integers(0, len(values) - 1))]
                new = draw(st.sampled_from(TOML_VALUES))
                text = text[: m.start(2)] + new + text[m.end(2) :]
                continue
        elif kind == "cut line" and n:
            del lines[i]
        elif kind == "duplicate line" and n:
            lines.insert(draw(st.integers(0, n)), lines[i])
        elif kind == "swap lines" and n > 1:
            j = draw(st.integers(0, n - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "swap cells":
            cells = lines[i].split(",")
            if len(cells) > 1:
                a, b = draw(st.integers(0, len(cells) - 1)), draw(st.integers(0, len(cells) - 1))
                cells[a], cells[b] = cells[b], cells[a]
                lines[i] = ",".join(cells)
        elif kind == "drop cell":
            cells = lines[i].split(",")
            del cells[draw(st.integers(0, len(cells) - 1))]
            lines[i] = ",".join(cells)
        elif kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
            continue
        elif kind == "cut span":
            a, b = sorted((draw(st.integers(0, len(text))), draw(st.integers(0, len(text)))))
            text = text[:a] + text[b:]
            continue
        elif kind == "insert":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(nasty_words()) + text[at:]
            continue
        text = "\n".join(lines)
    form = draw(st.sampled_from(("utf-8",) * 6 + ("bom", "crlf", "cr", "latin-1", "utf-16", "bad")))
    if form == "bom":
        return "\ufeff".encode() + text.encode("utf-8", "surrogatepass")
    if form == "crlf":
        return text.replace("\n", "\r\n").encode()
    if form == "cr":
        return text.replace("\n", "\r").encode()
    if form == "latin-1":
        return text.encode("latin-1", "replace")
    if form == "utf-16":
        return text.encode("utf-16")
    if form == "bad":  # bytes that are no UTF-8
        data = text.encode()
        at = draw(st.integers(0, len(data)))
        return data[:at] + b"\xff\xfe\xc3" + data[at:]
    return text.encode("utf-8", "surrogatepass")


def messages(exc: BaseException) -> str:
    """Every text an error shows: its message, its issues, its notes."""
    parts = [str(exc), repr(exc), *getattr(exc, "__notes__", ())]
    if isinstance(exc, DatasetError):
        parts += [str(i) for i in exc.issues]
    return "\n".join(parts)


def check(
    reader: str,
    call: Callable[[], T],
    *,
    secret: str | None = SECRET,
    shows: Callable[[T], str] = repr,
) -> T | None:
    """Run one reader on one input under the contract; its value, or None after an error.

    Anything but a :class:`HemolabError` propagates (and fails the test). ``secret``: text
    that must appear in no message, warning or ``shows(value)`` (None: not checked).
    """
    tried(reader)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = call()
        except HemolabError as exc:
            text = messages(exc)
            assert text.strip(), "a hemolab error must say what is wrong"
            if secret is not None:
                assert secret not in text, f"{reader}: the planted identifier in:\n{text}"
            value = None
    if secret is not None:
        for w in caught:
            assert secret not in str(w.message), f"{reader}: identifier in a warning"
        if value is not None:
            assert secret not in shows(value), f"{reader}: identifier in the value's repr"
    return value


def header_holds(data: bytes, secret: str = SECRET) -> bool:
    """Whether the first line (a CSV header: column names are echoed) holds ``secret``."""
    first = re.split(rb"\r\n|\r|\n", data, maxsplit=1)[0]
    return secret.encode() in first or secret.encode("utf-16")[2:] in data[:200]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path

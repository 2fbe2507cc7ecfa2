"""Fuzzing the TOML readers: protocols and protocol templates (``read_protocol``,
``protocol_model``, ``placeholders``), search spaces (``read_search_space``) and protocol
searches (``read_protocol_search``). Design note 031.

Seeds are the protocols and searches in ``examples/``; mutations cut, duplicate and swap
lines, replace a value by one of another TOML type (text, NaN, ±inf, huge integers, arrays,
tables, dates) or insert nasty text, and change the encoding. Template values are fuzzed as
well. The contract: the reader returns or raises a ``HemolabError`` (``ProtocolError``,
``SearchSpaceError``), never a ``TOMLDecodeError``, ``KeyError`` or ``TypeError``. These files
hold no patient data, so a message may quote what it names (a variable, a table).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from hemolab.protocols import protocol_model, read_protocol
from hemolab.protocols._read import placeholders
from hemolab.search import read_protocol_search, read_search_space
from tests.properties._fuzz import EXAMPLES, FUZZ, NASTY, check, mutated_text, write

PROTOCOLS = sorted(p for p in EXAMPLES.glob("*.toml") if "search" not in p.name)
SEARCHES = sorted(EXAMPLES.glob("*search*.toml"))
PROTOCOL_SEEDS = [p.read_text() for p in PROTOCOLS]
SEARCH_SEEDS = [p.read_text() for p in SEARCHES]
NAMES = ("dose", "interval", "cycles", "load", "maintenance", "group")
template_values = st.dictionaries(
    st.sampled_from(NAMES),
    st.one_of(
        st.sampled_from([100, 21, 3, 0, -1, 2.5, "O-", "AB+"]),
        st.sampled_from(NASTY),
        st.floats(),
        st.integers(-(2**70), 2**70),
    ),
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the examples: a search finds its template, a protocol its model file."""
    for p in EXAMPLES.iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _protocol(path: Path, time_unit: str | None, values: dict[str, object]) -> object:
    placeholders(path)
    protocol_model(path)
    return read_protocol(path, time_unit=time_unit, values=values)


@settings(FUZZ, max_examples=600)
@given(
    data=mutated_text(PROTOCOL_SEEDS, toml=True),
    time_unit=st.sampled_from([None, "d", "h", "fortnight"]),
    values=template_values,
)
def test_protocols(folder: Path, data: bytes, time_unit: str | None, values) -> None:
    path = write(folder / "fuzzed.toml", data)
    check("protocol TOML", lambda: _protocol(path, time_unit, values), secret=None)


@settings(FUZZ, max_examples=250)
@given(data=mutated_text(SEARCH_SEEDS, toml=True))
# a variable's type that is an array: a TypeError (unhashable)
@example(data=SEARCH_SEEDS[0].replace('type = "integer"', "type = []").encode())
def test_search_spaces(folder: Path, data: bytes) -> None:
    path = write(folder / "fuzzed-search.toml", data)
    check("search space TOML", lambda: read_search_space(path), secret=None)
    fields = frozenset({"protocol", "method", "budget", "per_axis", "seed"})
    check(
        "search space TOML",
        lambda: read_search_space(path, search_fields=fields, tables=frozenset({"objective"})),
        secret=None,
    )


@settings(FUZZ, max_examples=250)
@given(
    search=st.one_of(
        st.sampled_from(SEARCH_SEEDS).map(str.encode), mutated_text(SEARCH_SEEDS, toml=True)
    ),
    template=st.one_of(st.none(), mutated_text(PROTOCOL_SEEDS[1:3], toml=True)),
)
# a template that is no TOML: a TOMLDecodeError from placeholders()
@example(search=SEARCH_SEEDS[0].encode(), template=b"[protocol\n")
def test_protocol_searches(folder: Path, search: bytes, template: bytes | None) -> None:
    path = write(folder / "fuzzed-search.toml", search)
    other = None if template is None else write(folder / "fuzzed-template.toml", template)
    check("protocol search TOML", lambda: read_protocol_search(path, protocol=other), secret=None)


def test_the_seeds_read() -> None:
    assert len(PROTOCOL_SEEDS) >= 6 and len(SEARCH_SEEDS) >= 2
    for p in SEARCHES:
        assert read_protocol_search(p).space.names
    assert read_protocol(EXAMPLES / "docetaxel-protocol.toml").protocol.phases

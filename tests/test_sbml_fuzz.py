"""Fuzzing the SBML reader: mutated versions of the shared SBML Test Suite cases (text cuts,
changed attributes, renamed or dropped elements, garbled math) either read or fail with one of
hemolab's own errors, never with anything else (an IndexError, a sympy or libsbml exception)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import hemolab as hl
from hemolab.sbml import read_sbml
from tests._fuzz_counts import tried

SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "sbml-cases"
# a spread of features: reactions, rules, events (delayed, prioritised), delays, functions,
# conversion factors, stoichiometry math, varying compartments
SEEDS = ["00001", "00025", "00029", "00052", "00407", "00935", "00937", "00976", "01103", "01519"]


_DOCUMENTS: list[str] = []


def _documents() -> list[str]:
    """The seed documents, read once (not a fixture: Hypothesis would print them all)."""
    if not _DOCUMENTS:
        assert SHARED_CASES.is_dir(), f"the SBML Test Suite cases are missing: {SHARED_CASES}"
        for cid in SEEDS:
            path = sorted((SHARED_CASES / cid).glob(f"{cid}-sbml-l*.xml"))[0]
            _DOCUMENTS.append(path.read_text())
    return _DOCUMENTS


_ATTR = re.compile(r'(\w+)="([^"]*)"')
_WORDS = ["", "x", "-1", "0", "1e400", "NaN", "INF", "true", "S1", "unknown_id", "&amp;", "<"]


def _mutate(text: str, kind: int, a: float, b: float, word: str) -> str:
    n = len(text)
    i, j = sorted((int(a * n), int(b * n)))
    if kind == 0:  # cut a span
        return text[:i] + text[j:]
    if kind == 1:  # truncate
        return text[:i]
    if kind == 2:  # duplicate a span
        return text[:j] + text[i:j] + text[j:]
    if kind == 3:  # change one attribute value
        attrs = list(_ATTR.finditer(text))
        if not attrs:
            return text
        m = attrs[int(a * len(attrs)) % len(attrs)]
        return text[: m.start(2)] + word + text[m.end(2) :]
    if kind == 4:  # replace one identifier everywhere it is referenced
        attrs = [m for m in _ATTR.finditer(text) if m.group(1) in ("id", "species", "variable")]
        if not attrs:
            return text
        old = attrs[int(a * len(attrs)) % len(attrs)].group(2)
        return re.sub(rf"\b{re.escape(old)}\b", word or "q", text, count=1 + int(b * 3))
    # structural: drop or rename one element (valid XML, wrong SBML)
    root = ET.fromstring(text.encode())
    elements = [(parent, child) for parent in root.iter() for child in parent]
    parent, child = elements[int(a * len(elements)) % len(elements)]
    if kind == 5:
        parent.remove(child)
    else:
        ns = child.tag.split("}")[0] + "}" if child.tag.startswith("{") else ""
        child.tag = ns + (word if re.fullmatch(r"[A-Za-z]\w*", word) else "ci")
    return ET.tostring(root, encoding="unicode")


@settings(
    max_examples=800,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    kind=st.integers(0, 6),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    word=st.sampled_from(_WORDS),
)
def test_mutated_documents_read_or_fail_with_hemolab_errors(
    seed: int, kind: int, a: float, b: float, word: str
) -> None:
    text = _mutate(_documents()[seed], kind, a, b, word)
    tried("SBML")
    try:
        read_sbml(text)
    except hl.HemolabError as exc:
        assert str(exc), "a hemolab error must say what is wrong"


def test_the_unmutated_seeds_read() -> None:
    for text in _documents():
        assert read_sbml(text).state_names

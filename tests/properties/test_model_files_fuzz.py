"""Fuzzing the readers of model-side files: Antimony (text and ``.ant`` files), SED-ML
experiments, omega matrices (``--omega``, CSV and JSON) and fit files (``hemolab-fit/1``).
Design note 031; the SBML reader has its own fuzz test (``tests/test_sbml_fuzz.py``).

Seeds: Antimony converted from shared SBML Test Suite cases (``../shared/sbml-cases``, which
must be there: the test fails, not skips, without it), the SED-ML experiments of
``tests/data/biomodels`` and the omega and fit files of ``tests/data/fuzz``. Mutations are
textual (lines, cells, spans, nasty words, encodings), structural for XML (an element dropped
or renamed, an attribute changed) and typed for JSON (a member's value replaced by one of
another type). The contract: a value or a ``HemolabError``, nothing else. These files hold no
patient data, so messages may quote the names they are about.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings, strategies as st

from hemolab.calibrate._fitfile import load_fit
from hemolab.population._omega_file import read_omega
from hemolab.sbml import read_antimony
from hemolab.sbml._sedml import read_sedml
from tests.properties._fuzz import DATA, FUZZ, NASTY, SHARED, check, mutated_text, write
from tests.test_sbml_fuzz import _mutate as mutate_xml

# --- Antimony -------------------------------------------------------------------------------

ANTIMONY_CASES = ["00001", "00025", "00052", "00407", "00935", "01103"]
HANDWRITTEN = """model epo_like
  compartment blood = 5
  species E in blood, R in blood
  J0: -> E; kin
  J1: E -> ; kout*E
  R' = ksyn*E/(EC50 + E) - kd*R
  kin = 1; kout = 0.1; ksyn = 2; EC50 = 3; kd = 0.05
  E = 10; R = 40
  at (time > 5): kin = 0
end
"""
_ANTIMONY: list[str] = []


def antimony_seeds() -> list[str]:
    """Antimony text of shared SBML cases (converted once) and a handwritten model."""
    if not _ANTIMONY:
        import antimony

        cases = SHARED / "sbml-cases"
        assert cases.is_dir(), f"the SBML Test Suite cases are missing: {cases}"
        for cid in ANTIMONY_CASES:
            path = sorted((cases / cid).glob(f"{cid}-sbml-l*.xml"))[0]
            antimony.clearPreviousLoads()
            assert antimony.loadSBMLFile(str(path)) >= 0, cid
            _ANTIMONY.append(antimony.getAntimonyString(antimony.getMainModuleName()))
        _ANTIMONY.append(HANDWRITTEN)
    return _ANTIMONY


@st.composite
def antimony_texts(draw: st.DrawFn) -> bytes:
    return draw(mutated_text(antimony_seeds()))


@settings(FUZZ, max_examples=400)
@given(data=antimony_texts(), as_file=st.booleans())
# a non-ASCII character: antimony's error message, cut mid-character, is no UTF-8 and the
# package raised UnicodeDecodeError
@example(data="model x\n  S1 -> ; k*S1 é\n  S1 = 1; k = 1\nend\n".encode(), as_file=False)
# a byte-order mark (an editor's): refused by Antimony's parser, now skipped
@example(data="\ufeffmodel x\n  S1 -> ; k*S1\n  S1 = 1; k = 1\nend\n".encode(), as_file=True)
# an .ant file that is no UTF-8: UnicodeDecodeError from read_text
@example(data=b"model x\n  S1 -> ; k*S1\xff\nend\n", as_file=True)
def test_antimony(tmp_path: Path, data: bytes, as_file: bool) -> None:
    if as_file:
        path = write(tmp_path / "model.ant", data)
        check("Antimony", lambda: read_antimony(path), secret=None)
    else:
        text = data.decode("utf-8", "replace")
        check("Antimony", lambda: read_antimony(text), secret=None)


def test_the_antimony_seeds_read() -> None:
    for text in antimony_seeds():
        assert read_antimony(text).state_names


# --- SED-ML ---------------------------------------------------------------------------------

SEDML = sorted((DATA / "biomodels").glob("*/*.sedml"))
SEDML_SEEDS = [p.read_text() for p in SEDML]


@settings(FUZZ, max_examples=200)
@given(
    seed=st.integers(0, len(SEDML) - 1),
    kind=st.integers(0, 6),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    word=st.sampled_from(["", "x", "-1", "1e400", "NaN", "model", "task1", "&amp;", "<"]),
    encoded=st.one_of(st.none(), mutated_text(SEDML_SEEDS)),
)
def test_sedml(
    tmp_path: Path, seed: int, kind: int, a: float, b: float, word: str, encoded
) -> None:
    source = SEDML[seed]
    for p in source.parent.iterdir():
        shutil.copy(p, tmp_path / p.name)
    text = encoded if encoded is not None else mutate_xml(SEDML_SEEDS[seed], kind, a, b, word)
    path = write(tmp_path / "experiment.sedml", text)
    model = next(source.parent.glob("*.xml"))
    check("SED-ML", lambda: read_sedml(path, tmp_path / model.name), secret=None)
    check("SED-ML", lambda: read_sedml(path), secret=None)


# --- omega files ------------------------------------------------------------------------------

OMEGA_TEXT = [(DATA / "fuzz" / n).read_text() for n in ("omega.csv", "omega.json")]
OMEGA_JSON = [
    json.loads((DATA / "fuzz" / n).read_text()) for n in ("omega.json", "omega-diagonal.json")
]
JSON_VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.just(10**400),
    st.floats(),
    st.lists(st.floats(), max_size=3),
    st.just({}),
    st.just([[1.0]]),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, seeds: list[Any]) -> bytes:
    """A JSON seed with up to three members replaced, removed or added, then dumped."""
    doc = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = copy.deepcopy(draw(st.one_of(JSON_VALUES, st.just(doc))))
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if kind == "replace":
            parent[path[-1]] = copy.deepcopy(draw(JSON_VALUES))
        elif kind == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "MTT", "omega", "parameters"]))] = copy.deepcopy(
                draw(JSON_VALUES)
            )
        else:
            parent.append(copy.deepcopy(draw(JSON_VALUES)))
    return json.dumps(doc).encode()


@settings(FUZZ, max_examples=400)
@given(
    data=st.one_of(mutated_text(OMEGA_TEXT), mutated_json(OMEGA_JSON)),
    suffix=st.sampled_from([".csv", ".json", ".txt", ".toml"]),
)
# ragged rows: numpy's ValueError (inhomogeneous shape) from Variability
@example(data=b'{"parameters": ["Slope"], "omega": [[0.01], [0.01, 0.128]]}', suffix=".json")
# UTF-16 (a spreadsheet's "Unicode text"): UnicodeDecodeError
@example(data=OMEGA_TEXT[0].encode("utf-16"), suffix=".csv")
# an integer beyond float range: OverflowError
@example(data=b'{"MTT": 1' + b"0" * 400 + b"}", suffix=".json")
def test_omega_files(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = write(tmp_path / f"omega{suffix}", data)
    check("omega file", lambda: read_omega(path), secret=None)


# --- fit files --------------------------------------------------------------------------------

FIT_TEXT = (DATA / "fuzz" / "fit.json").read_text()
FIT = json.loads(FIT_TEXT)


@settings(FUZZ, max_examples=400)
@given(data=st.one_of(mutated_json([FIT]), mutated_text([FIT_TEXT])))
# an estimate beyond float range: OverflowError
@example(data=FIT_TEXT.replace('"Hb0": 12.6', '"Hb0": 1' + "0" * 400).encode())
def test_fit_files(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "fit.json", data)
    check("fit file", lambda: load_fit(path), secret=None)


def test_the_model_file_seeds_read() -> None:
    assert len(SEDML) >= 3
    assert read_omega(DATA / "fuzz" / "omega.csv").parameters == ("MTT", "Slope")
    assert load_fit(DATA / "fuzz" / "fit.json").method == "nuts"

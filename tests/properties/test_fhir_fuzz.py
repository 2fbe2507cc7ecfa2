"""Fuzzing ``read_fhir`` (DATA-FORMATS §B): FHIR R4 bundles generated entry by entry and a seed
bundle (``tests/data/fuzz/bundle.json``: a patient, values with a comparator, a period,
components, a dropped status, another resource) mutated as a JSON tree (a member removed, a
value replaced by one of another type, an entry duplicated) and as text. Design note 031.

The contract: a ``LabHistory`` or a ``DatasetError`` (a ``HemolabError``), never another
exception, and the identifier planted as the patient's id, identifier and reference never in
a message, a warning or the history's ``repr``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings, strategies as st

from hemolab.patients import read_fhir
from tests.properties._fuzz import DATA, FUZZ, NASTY, SECRET, check, mutated_text, write

UCUM = "http://unitsofmeasure.org"
SEED_TEXT = (DATA / "fuzz" / "bundle.json").read_text()
SEED: dict[str, Any] = json.loads(SEED_TEXT)

JSON_VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.sampled_from(["sNaN", "Infinity", "-0.0", "1e-400", "12.5", "Patient/", "urn:uuid:x"]),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.just(10**400),
    st.floats(),
    st.just([]),
    st.just({}),
    st.just([SECRET]),
    st.just({"reference": SECRET}),
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
def mutated_bundles(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        kind = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "wrap"]))
        if kind == "replace":
            parent[last] = copy.deepcopy(draw(JSON_VALUES))
        elif kind == "delete":
            del parent[last]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        elif kind == "wrap":
            parent[last] = [parent[last]]
    return doc


OBS_FIELDS = {
    "status": st.sampled_from(["final", "preliminary", "amended", "registered", "x", ""]),
    "code": st.sampled_from(
        [
            {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            {"coding": [{"system": "http://loinc.org", "code": "0-0"}]},
            {"coding": [{"code": "718-7"}]},
            {"text": "Hb"},
        ]
    ),
    "subject": st.sampled_from([{"reference": f"Patient/{SECRET}"}, {"display": SECRET}, {}]),
    "effectiveDateTime": st.sampled_from(
        [
            "2024-03-05T08:30:00+01:00",
            "2024-03-05",
            "2024-03",
            "2024",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2024-03-05T08:30:00",
        ]
    ),
    "valueQuantity": st.fixed_dictionaries(
        {},
        optional={
            "value": st.one_of(st.floats(-1, 1e6), st.sampled_from(["1", "x", 10**400])),
            "system": st.sampled_from(["http://unitsofmeasure.org", "urn:x"]),
            "code": st.sampled_from(["g/dL", "g/L", "mmol/L", "10*9/L", "%", "kg", SECRET]),
            "comparator": st.sampled_from(["<", "<=", ">", "ad"]),
            "unit": st.just(SECRET),
        },
    ),
}


@st.composite
def generated_bundles(draw: st.DrawFn) -> dict[str, Any]:
    entries: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["Observation", "Observation", "Patient", "Other", "junk"]))
        if kind == "junk":
            entries.append(copy.deepcopy(draw(JSON_VALUES)))
            continue
        resource: dict[str, Any] = {"resourceType": kind}
        if kind == "Observation":
            resource |= draw(st.fixed_dictionaries({}, optional=OBS_FIELDS))
            if draw(st.booleans()):
                resource["component"] = [
                    draw(st.fixed_dictionaries({}, optional=OBS_FIELDS)) for _ in range(2)
                ]
        elif kind == "Patient":
            resource |= {
                "id": SECRET,
                "gender": draw(st.sampled_from(["female", "x"])),
                "birthDate": draw(st.sampled_from(["1961-09-14", "1961", "0000-01-01", "x"])),
            }
        entries.append({"resource": resource, "fullUrl": f"urn:uuid:{SECRET}"})
    return {
        "resourceType": draw(st.sampled_from(["Bundle", "Bundle", "Patient"])),
        "type": draw(st.sampled_from(["collection", "searchset", "transaction", "document"])),
        "entry": entries,
    }


@settings(FUZZ, max_examples=600)
@given(doc=st.one_of(generated_bundles(), mutated_bundles()), partial=st.booleans())
# a date-time whose UTC time is before year 1: an OverflowError
@example(
    doc={
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": f"Patient/{SECRET}"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "effectiveDateTime": "0001-01-01T00:00:00+14:00",
                    "valueQuantity": {"value": 1, "system": UCUM, "code": "g/dL"},
                }
            }
        ],
    },
    partial=False,
)
def test_bundles_as_documents(doc: dict[str, Any], partial: bool) -> None:
    check("FHIR bundle", lambda: read_fhir(doc, allow_partial_dates=partial))


@settings(FUZZ, max_examples=300)
@given(data=st.one_of(mutated_text([SEED_TEXT]), mutated_bundles().map(lambda d: _dump(d))))
def test_bundles_as_files(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "bundle.json", data)
    check("FHIR bundle", lambda: read_fhir(path))


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity as JSON's extension


def test_the_seed_bundle_reads() -> None:
    history = read_fhir(DATA / "fuzz" / "bundle.json")
    assert len(history.records) == 4
    assert SECRET not in repr(history)

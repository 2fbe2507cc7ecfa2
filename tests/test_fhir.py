"""Lab histories from FHIR R4 bundles (DATA-FORMATS §B): what is read, dropped and refused."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hemolab import DatasetError
from hemolab.patients import read_fhir

SUBJECT = "Patient/MRN-0048151623"  # identifying: must not appear in messages


def qty(value: Any, code: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "unit": "display", "system": "http://unitsofmeasure.org",
            "code": code, **extra}  # fmt: skip


def obs(loinc: str, quantity: dict | None, when: dict | None = None, **extra: Any) -> dict:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": SUBJECT},
        **(when or {"effectiveDateTime": "2024-03-05T08:30:00+01:00"}),
    }
    if quantity is not None:
        res["valueQuantity"] = quantity
    res.update(extra)
    return {"resource": res}


def bundle(*entries: dict, kind: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


PATIENT = {
    "fullUrl": "urn:uuid:5f0c",
    "resource": {
        "resourceType": "Patient",
        "id": "MRN-0048151623",
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1931-02-17",
    },
}


def test_a_bundle_is_read_with_units_components_censoring_and_status(tmp_path: Path) -> None:
    doc = bundle(
        PATIENT,
        obs("718-7", qty(123, "g/L")),
        obs(
            "751-8",
            qty(0.1, "10*9/L", comparator="<"),
            {"effectiveInstant": "2024-03-06T10:00:00Z"},
        ),
        obs(
            "777-3",
            qty(85, "10*3/uL"),
            {"effectivePeriod": {"start": "2024-03-07T09:00:00-05:00"}},
            status="preliminary",
        ),
        obs("718-7", qty(11, "g/dL"), status="cancelled"),
        obs(
            "58410-2",
            None,
            component=[  # CBC panel: components read one by one
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
                    "valueQuantity": qty(4.2, "10*3/uL"),
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "valueQuantity": qty(7.0, "mmol/L"),
                },
            ],
        ),
        {
            "resource": {
                "resourceType": "DiagnosticReport",
                "status": "final",
                "code": {"text": "CBC"},
            }
        },
        kind="searchset",
    )
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    labs = read_fhir(path)
    got = [(r.analyte, r.value, r.censored, r.lloq, r.preliminary) for r in labs.records]
    assert [g[0] for g in got] == ["hb", "anc", "plt", "wbc", "hb"]
    assert math.isclose(got[0][1], 12.3) and math.isclose(got[4][1], 7.0 * 1.611)
    assert got[1][2] and math.isnan(got[1][1]) and got[1][3] == 0.1
    assert got[2][4] and got[3][1] == 4.2
    assert labs.records[2].stamp == datetime(2024, 3, 7, 14, 0, tzinfo=UTC)
    assert {r.source_id for r in labs.records} == {SUBJECT}
    assert labs.dropped == {"cancelled": 1, "resource DiagnosticReport": 1}
    assert labs.demographics[SUBJECT].sex == "female"
    assert labs.demographics["urn:uuid:5f0c"].birth_year == 1931
    assert "MRN" not in repr(labs)


def test_every_bad_entry_is_reported_without_identifiers() -> None:
    no_ucum = qty(12, "g/dL")
    no_ucum["system"] = "http://example.org/units"
    doc = bundle(
        obs("718-7", qty(12, "g/dL"), {"effectiveDateTime": "2024-03"}),  # partial date
        obs("718-7", qty(12, "g/dL"), subject=None),  # no subject
        obs("718-7", no_ucum),
        obs("718-7", qty(12, "mg")),  # not commensurable
        obs("2951-2", qty(140, "mmol/L")),  # LOINC not read
        obs("718-7", qty("twelve", "g/dL")),  # invalid resource
        obs("718-7", None),  # no value
        obs("718-7", qty(12, "g/dL", comparator=">")),
    )
    doc["entry"][1]["resource"].pop("subject")
    with pytest.raises(DatasetError) as info:
        read_fhir(doc, file_name="bad.json")
    where = [(i.row, i.column) for i in info.value.issues]
    assert [w[0] for w in where] == [1, 2, 3, 4, 5, 6, 7, 8], where
    text = str(info.value)
    assert text.startswith("8 problems in the FHIR bundle:")
    assert "bad.json, entry 1, element effective[x]: expected effectiveDateTime" in text
    assert "entry 4, element valueQuantity.code: haemoglobin cannot be read in 'mg'" in text
    assert "entry 6, element valueQuantity.value" in text
    assert "MRN" not in text and "twelve" not in text


def test_partial_dates_can_be_allowed() -> None:
    doc = bundle(obs("718-7", qty(12, "g/dL"), {"effectiveDateTime": "2024-03"}))
    rec = read_fhir(doc, allow_partial_dates=True).records[0]
    assert rec.stamp == datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"resourceType": "Patient"}, "expected a FHIR Bundle"),
        (bundle(kind="document"), "expected a Bundle of type collection, searchset"),
        (bundle(PATIENT), "no laboratory value"),
    ],
)
def test_bundle_level_problems(doc: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        read_fhir(doc)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="the file does not exist"):
        read_fhir(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", ')
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_fhir(bad)

"""No identifier leaves the de-identification boundary, on any path (DATA-FORMATS §0, §B).

A fictional patient's identifiers (MRN, name, birth date, phone, exact dates and times) are
fed through every command that touches patient data: import of a lab CSV and of a FHIR
bundle, calibration from the store and from files (with a dosing history), forecasts with
plots and a history, and bad input on each path (malformed rows carrying the identifiers,
an unknown unit, a wrong key, an unknown pseudonym, a fit file edited by hand). Everything
printed, everything logged at DEBUG, and every byte of every file written (the store's
database included, the encrypted key table excepted) is scanned.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hemolab.cli import app
from hemolab.cli._showcase import showcase_bundle

MRN = "MRN-55501234"
NAME = ("Grace", "Hopper-Example")
BIRTH = "1939-12-09"
PHONE = "+1-555-0142"
FIRST_DATE = "2026-05-04"  # a date of service is an identifier (Safe Harbor)
IDENTIFIERS = (MRN, "55501234", *NAME, BIRTH, PHONE, FIRST_DATE, "08:30:00")


def bundle_with_identifiers() -> dict:
    doc = showcase_bundle()
    text = json.dumps(doc).replace("MRN-7730021", MRN).replace("7730021", "55501234")
    doc = json.loads(text)
    patient = doc["entry"][0]["resource"]
    patient["name"] = [{"family": NAME[1], "given": [NAME[0]]}]
    patient["birthDate"] = BIRTH
    patient["telecom"] = [{"system": "phone", "value": PHONE}]
    return doc


def lab_csv(rows: int = 7) -> str:
    lines = ["patient_id,datetime,loinc,value,unit,status,specimen"]
    for k in range(rows):
        lines.append(f"{MRN},2026-{5 + k:02d}-04T08:30:00Z,718-7,{12.5 - 0.6 * k:.1f},g/dL,"
                     "final,venous")  # fmt: skip
    return "\n".join(lines) + "\n"


class Sweep:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.outputs: list[str] = []
        self.runner = CliRunner()

    def run(self, *args: str | Path, code: int | None = 0) -> Result:
        res = self.runner.invoke(app, [str(a) for a in args])
        self.outputs.append(res.output)
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        if code is not None:
            assert res.exit_code == code, res.output
        return res


@pytest.mark.slow
def test_identifiers_never_reach_an_output_a_log_or_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    work = tmp_path / "work"
    s = Sweep(work)
    bundle = inputs / "bundle.json"
    bundle.write_text(json.dumps(bundle_with_identifiers()))
    csv = inputs / "labs.csv"
    csv.write_text(lab_csv())
    events = inputs / "events.csv"
    events.write_text(f"ID,DATETIME,EVID,AMT,CMT\n{MRN},2026-08-14T10:30:00Z,1,1.0,Hb1\n")
    key = work / "k.key"
    store = work / "store"

    # the good paths
    s.run("keygen", "--key-file", key)
    imp = json.loads(s.run("import", bundle, "--store", store, "--key-file", key,
                           "--json").stdout)  # fmt: skip
    who = imp["patients"][0]["pseudonym"]
    s.run("import", csv, "--store", store, "--key-file", key)  # same patient, same MRN
    s.run("import", bundle, "--events", events, "--store", store, "--key-file", key)  # + doses
    fit = work / "fit.json"
    s.run("calibrate", "marrow_failure_hb", "--store", store, "--patient", who, "--method",
          "laplace", "--out", fit, "--gof", work / "gof.png", "--json")  # fmt: skip
    s.run("forecast", fit, "--threshold", "Hb<7", "--plot", work / "fan.png", "--store", store)
    s.run("forecast", fit, "--threshold", "Hb<7", "--store", store, "--json")
    for source in (bundle, csv):
        out = work / f"fit-{source.stem}.json"
        s.run("calibrate", "marrow_failure_hb", "--labs", source, "--events", events,
              "--method", "map", "--out", out, "--json")  # fmt: skip
        s.run("forecast", out, "--threshold", "Hb<7", "--json")

    # the bad paths: every one carries the identifiers into the failing input
    bad_csv = inputs / "bad.csv"
    bad_csv.write_text(lab_csv(2).replace("g/dL", MRN, 1).replace("718-7", f"{PHONE}", 1))
    s.run("import", bad_csv, "--store", store, "--key-file", key, code=2)
    shifted = inputs / "shifted.csv"
    shifted.write_text(lab_csv(2).replace(",final,venous", f",{NAME[0]},{BIRTH}"))
    s.run("import", shifted, "--store", store, "--key-file", key, code=2)
    broken = bundle_with_identifiers()
    broken["entry"][1]["resource"]["effectiveDateTime"] = BIRTH  # a partial date
    broken["entry"][2]["resource"]["valueQuantity"]["code"] = MRN
    bad_bundle = inputs / "bad_bundle.json"
    bad_bundle.write_text(json.dumps(broken))
    s.run("import", bad_bundle, "--store", store, "--key-file", key, code=2)
    s.run("calibrate", "marrow_failure_hb", "--labs", bad_bundle, "--out", work / "x.json",
          code=2)  # fmt: skip
    other_key = work / "other.key"
    s.run("keygen", "--key-file", other_key)
    s.run("import", bundle, "--store", store, "--key-file", other_key, code=2)
    bad_events = inputs / "bad_events.csv"
    bad_events.write_text(f"ID,DATETIME,EVID,AMT,CMT\n{MRN},{BIRTH}T10:30:00Z,9,1.0,{NAME[0]}\n")
    s.run("calibrate", "marrow_failure_hb", "--labs", bundle, "--events", bad_events,
          "--out", work / "x.json", code=2)  # fmt: skip
    s.run("import", bundle, "--events", bad_events, "--store", store, "--key-file", key, code=2)
    noted = inputs / "noted_events.csv"
    noted.write_text(f"ID,DATETIME,EVID,AMT,CMT,NOTE\n{MRN},2026-08-15T10:30:00Z,1,1,Hb1,"
                     f"{NAME[0]} {PHONE}\n{NAME[1]},{BIRTH}T00:00:00Z,1,1,Hb1,\n")  # fmt: skip
    s.run("import", bundle, "--events", noted, "--store", store, "--key-file", key, code=2)
    s.run("calibrate", "marrow_failure_hb", "--store", store, "--patient", MRN, "--out",
          work / "x.json", code=2)  # fmt: skip
    edited = inputs / "edited.json"  # an input, like the other files carrying identifiers
    edited.write_text(fit.read_text().replace('"method": "laplace"', f'"method": "{MRN}"'))
    s.run("forecast", edited, "--threshold", "Hb<7", code=2)

    texts = {"output": "\n".join(s.outputs), "log": caplog.text}
    scanned = 0
    for path in sorted(work.rglob("*")):
        if path.is_file() and path.name not in ("keys.enc", "k.key", "other.key"):
            texts[str(path.relative_to(work))] = path.read_bytes().decode("latin-1")
            scanned += 1
    assert {"store/hemolab.duckdb", "fit.json", "gof.png", "fan.png"} <= set(texts)
    for where, text in texts.items():
        for ident in IDENTIFIERS:
            assert ident not in text, f"{ident!r} in {where}"
    print(f"\nidentifier sweep: {len(s.outputs)} commands, {scanned} files, "
          f"{len(caplog.records)} log records scanned")  # fmt: skip

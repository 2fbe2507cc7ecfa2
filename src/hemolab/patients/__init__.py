"""Patients: lab histories in (CSV, FHIR R4 bundles), in canonical UCUM units (§B)."""

from hemolab.patients._analytes import (
    ANALYTES as ANALYTES,
    Analyte as Analyte,
    analyte_for_loinc as analyte_for_loinc,
)
from hemolab.patients._fhir import read_fhir as read_fhir
from hemolab.patients._labs import (
    Demographics as Demographics,
    LabHistory as LabHistory,
    LabRecord as LabRecord,
    read_labs as read_labs,
)
from hemolab.patients._records import read_patient_records as read_patient_records

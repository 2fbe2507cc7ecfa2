"""Patients: lab histories in, converted to canonical UCUM units (DATA-FORMATS §B)."""

from hemolab.patients._analytes import (
    ANALYTES as ANALYTES,
    Analyte as Analyte,
    analyte_for_loinc as analyte_for_loinc,
)
from hemolab.patients._labs import (
    LabHistory as LabHistory,
    LabRecord as LabRecord,
    read_labs as read_labs,
)

"""The laboratory analytes hemolab reads (DATA-FORMATS §B): LOINC codes, canonical UCUM units.

Each analyte maps to the observable name the library models use (``Hb``, ``ANC``, ``PLT``...)
and has one canonical unit; any UCUM unit commensurable with it converts through
:mod:`hemolab.model._units`. Haemoglobin is also reported in substance concentration
(``mmol/L`` of the Hb monomer, as in the Netherlands and Scandinavia): 1 mmol/L = 1.611 g/dL,
the factor of DATA-FORMATS §0 (molar mass of the monomer, 16.11 g/mmol).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hemolab._errors import UnitError
from hemolab.model._units import conversion_factor, parse_unit

__all__ = ["ANALYTES", "Analyte", "analyte_for_loinc"]


@dataclass(frozen=True)
class Analyte:
    """One laboratory analyte: its key, the model observable it informs and its units."""

    key: str  # "hb"
    observable: str  # "Hb"
    loinc: tuple[str, ...]  # accepted LOINC codes
    unit: str  # canonical UCUM code
    description: str
    # amount-of-substance units convert through a molar mass: canonical units per (mmol/L)
    per_mmol_per_l: float | None = None
    examples: tuple[str, ...] = field(default=())

    def factor(self, unit: str) -> float:
        """Multiply a value in ``unit`` by this to get the canonical unit.

        Raises :class:`~hemolab.UnitError` naming the unit and the canonical one when they are
        not commensurable (never a guess).
        """
        accepted = ", ".join((self.unit, *self.examples))
        try:
            parsed = parse_unit(unit)
        except UnitError:
            # not quoted: a cell that is no UCUM code may be anything (an identifier in a
            # shifted column), and messages never echo what could identify a patient
            raise UnitError(
                f"the unit is not a UCUM code hemolab reads; expected a unit commensurable "
                f"with {self.unit} for {self.description} (e.g. {accepted})"
            ) from None
        try:
            return conversion_factor(unit, self.unit)
        except UnitError:
            if self.per_mmol_per_l is not None:
                try:
                    return conversion_factor(unit, "mmol/L") * self.per_mmol_per_l
                except UnitError:
                    pass
            raise UnitError(
                f"{self.description} cannot be read in {unit!r} ({parsed}); "
                f"expected a unit commensurable with {self.unit} (e.g. {accepted})"
            ) from None


_COUNT_UNITS = ("10*3/uL", "10*3/mm3", "/uL")
ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte(
            "hb",
            "Hb",
            ("718-7", "30350-3"),
            "g/dL",
            "haemoglobin",
            per_mmol_per_l=1.611,
            examples=("g/L", "mmol/L"),
        ),
        Analyte("hct", "Hct", ("4544-3", "20570-8"), "%", "haematocrit", examples=("L/L",)),
        Analyte("rbc", "RBC", ("789-8",), "10*12/L", "red cell count", examples=("10*6/uL",)),
        Analyte(
            "wbc", "WBC", ("6690-2", "26464-8"), "10*9/L", "white cell count", examples=_COUNT_UNITS
        ),
        Analyte(
            "anc",
            "ANC",
            ("751-8", "26499-4"),
            "10*9/L",
            "absolute neutrophil count",
            examples=_COUNT_UNITS,
        ),
        Analyte(
            "plt", "PLT", ("777-3", "26515-7"), "10*9/L", "platelet count", examples=_COUNT_UNITS
        ),
        Analyte("retic_pct", "Retic_pct", ("17849-1",), "%", "reticulocyte fraction"),
        Analyte(
            "retic_abs",
            "Retic",
            ("60474-4", "14196-0"),
            "10*9/L",
            "absolute reticulocyte count",
            examples=("10*3/uL", "10*6/uL"),
        ),
    )
}

_BY_LOINC = {code: a for a in ANALYTES.values() for code in a.loinc}


def analyte_for_loinc(code: str) -> Analyte | None:
    """The analyte of a LOINC code, or None when hemolab does not read that code."""
    return _BY_LOINC.get(code.strip())

"""CTCAE v5.0 hematologic grades (NCI, 27 Nov 2017; MODELS.md §7b), pinned to that version.

A grade is a function of the count and the lower limit of normal (LLN): grade 1 below the
LLN, then the term's fixed cut-offs. LLNs are lab-dependent (MODELS.md §7a); the defaults are
the Merck Manual's adult values, and haemoglobin's depends on sex. Anemia has no numeric
grade 4 (it is "life-threatening; urgent intervention"): it stops at 3. v6.0 (2025) renamed
terms; the version is part of every result that carries a grade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["CTCAE_TERMS", "CTCAE_VERSION", "CtcaeTerm", "ctcae_grades"]

CTCAE_VERSION = "5.0"


@dataclass(frozen=True)
class CtcaeTerm:
    term: str
    unit: str
    cutoffs: tuple[float, ...]  # below cutoffs[0]: grade 2, below cutoffs[1]: 3, ...
    lln: float | None  # default lower limit of normal (None: depends on sex)


CTCAE_TERMS: dict[str, CtcaeTerm] = {
    "ANC": CtcaeTerm("Neutrophil count decreased", "10*9/L", (1.5, 1.0, 0.5), 1.8),
    "WBC": CtcaeTerm("White blood cell decreased", "10*9/L", (3.0, 2.0, 1.0), 4.5),
    "PLT": CtcaeTerm("Platelet count decreased", "10*9/L", (75.0, 50.0, 25.0), 140.0),
    "Lymph": CtcaeTerm("Lymphocyte count decreased", "10*9/L", (0.8, 0.5, 0.2), 1.0),
    "Hb": CtcaeTerm("Anemia", "g/dL", (10.0, 8.0), None),
}
_HB_LLN = {"female": 12.0, "male": 14.0}  # Merck Manual, g/dL


def ctcae_grades(
    observable: str, values: np.ndarray, *, lln: float | None = None, sex: str | None = None
) -> np.ndarray:
    """CTCAE v5.0 grades (0-4; 0-3 for anemia) of ``values`` in the term's unit; NaN gives -1.

    ``lln`` overrides the default lower limit of normal; haemoglobin needs ``lln`` or
    ``sex`` ("female"/"male").
    """
    term = CTCAE_TERMS.get(observable)
    if term is None:
        raise HemolabError(
            f"no CTCAE v{CTCAE_VERSION} grade for {observable!r}; graded: {', '.join(CTCAE_TERMS)}"
        )
    limit = lln if lln is not None else term.lln
    if limit is None:
        if sex not in _HB_LLN:
            raise HemolabError(
                "the anemia grade needs the lower limit of normal: give lln= or sex='female'/'male'"
            )
        limit = _HB_LLN[sex]
    x = np.asarray(values, dtype=np.float64)
    grade = np.zeros(x.shape, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        grade = np.where(x < limit, 1, grade)
        for g, cut in enumerate(term.cutoffs, start=2):
            grade = np.where(x < cut, g, grade)
    return np.where(np.isnan(x), -1, grade)

"""ABO/RhD compatibility of blood products (MODELS.md §7d; standard AABB conventions).

* Red cells (recipient <- donor): O <- O; A <- A, O; B <- B, O; AB <- AB, A, B, O.
* Plasma, the reverse: O <- O, A, B, AB; A <- A, AB; B <- B, AB; AB <- AB.
* Whole blood: ABO-identical (it carries both the donor's cells and plasma).
* RhD: a D-negative recipient receives D-negative red cells (and whole blood); D-positive
  recipients receive either. Plasma carries no red cells: RhD does not apply.
* Platelets: ABO-identical preferred (a plasma-incompatible unit gives a smaller increment: a
  warning, not a refusal); D-negative for a D-negative recipient who is a female of
  child-bearing potential (a refusal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hemolab._errors import HemolabError

__all__ = ["ABO_GROUPS", "BloodGroup", "Compatibility", "compatibility", "destroys_red_cells"]

ABO_GROUPS = ("O", "A", "B", "AB")
_ANTIGENS = {"O": frozenset(), "A": frozenset("A"), "B": frozenset("B"), "AB": frozenset("AB")}
_RED_CELL_PRODUCTS = frozenset({"RBC", "WB"})
_PLATELETS = frozenset({"PLT_APH", "PLT_POOL"})
_GROUP = re.compile(r"^\s*(AB|A|B|O)\s*(POS|NEG|\+|-|RH\+|RH-)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BloodGroup:
    """An ABO group and RhD type (``None``: not known)."""

    abo: str
    rhd_positive: bool | None = None

    def __post_init__(self) -> None:
        if self.abo not in ABO_GROUPS:
            raise HemolabError(f"ABO group {self.abo!r} is not one of O, A, B, AB")

    @classmethod
    def parse(cls, text: str) -> BloodGroup:
        """``"A+"``, ``"O NEG"``, ``"AB pos"``, ``"B"`` (RhD unknown)."""
        m = _GROUP.match(text or "")
        if m is None:
            raise HemolabError(
                f"blood group {text!r} is not an ABO group (O, A, B, AB) with an optional "
                "RhD (+, -, POS, NEG)"
            )
        rh = m.group(2)
        positive = None if rh is None else rh.upper().endswith(("+", "POS"))
        return cls(m.group(1).upper(), positive)

    def __str__(self) -> str:
        return self.abo + {None: "", True: "+", False: "-"}[self.rhd_positive]


@dataclass(frozen=True)
class Compatibility:
    """Whether a product may be given: ``ok`` (else ``reason`` says why, citing §7d), and
    ``warning`` for a permitted but not preferred choice."""

    ok: bool
    reason: str = ""
    warning: str = ""


def _red_cells_ok(donor: str, recipient: str) -> bool:
    """The donor's red-cell antigens are all the recipient's own."""
    return _ANTIGENS[donor] <= _ANTIGENS[recipient]


def compatibility(
    product: str,
    donor: BloodGroup,
    recipient: BloodGroup,
    *,
    female_of_childbearing_potential: bool = False,
) -> Compatibility:
    """Compatibility of a unit of ``product`` (RBC, WB, PLASMA, PLT_APH, PLT_POOL) of group
    ``donor`` for a patient of group ``recipient`` (MODELS.md §7d)."""
    p = product.upper()
    d, r = donor.abo, recipient.abo
    why = f"{p} of group {donor} for a {recipient} patient"
    if p == "RBC" and not _red_cells_ok(d, r):
        return Compatibility(
            False,
            f"{why}: ABO-incompatible red cells ({r} recipients "
            f"receive {_red_cell_donors(r)}; MODELS.md §7d)",
        )
    if p == "WB" and d != r:
        return Compatibility(False, f"{why}: whole blood must be ABO-identical (MODELS.md §7d)")
    if p == "PLASMA":
        if not _red_cells_ok(r, d):
            return Compatibility(
                False,
                f"{why}: ABO-incompatible plasma ({r} recipients "
                f"receive {_plasma_donors(r)}; MODELS.md §7d)",
            )
        return Compatibility(True)
    if p not in _RED_CELL_PRODUCTS and p not in _PLATELETS:
        raise HemolabError(f"product {product!r} is not one of RBC, WB, PLASMA, PLT_APH, PLT_POOL")
    d_pos, r_pos = donor.rhd_positive, recipient.rhd_positive
    rh_unknown = d_pos is None or r_pos is None
    if p in _RED_CELL_PRODUCTS:
        if not rh_unknown and d_pos and not r_pos:
            return Compatibility(
                False,
                f"{why}: a D-negative recipient receives D-negative red cells (MODELS.md §7d)",
            )
        return Compatibility(
            True, warning="RhD of the unit or the patient unknown" if rh_unknown else ""
        )
    # platelets
    if not rh_unknown and d_pos and not r_pos and female_of_childbearing_potential:
        return Compatibility(
            False,
            f"{why}: D-negative platelets for a D-negative female of "
            "child-bearing potential (MODELS.md §7d)",
        )
    if d != r:
        return Compatibility(
            True,
            warning=f"{why}: not ABO-identical (a plasma-incompatible "
            "unit gives a smaller increment)",
        )
    return Compatibility(True)


def destroys_red_cells(product: str, donor: BloodGroup, recipient: BloodGroup) -> bool:
    """Whether the unit's red cells meet the recipient's anti-A/anti-B (an acute haemolytic
    reaction): ABO-incompatible red cells (RBC, WB). An RhD mismatch immunises (a later
    exposure is the danger) and a plasma mismatch carries no red cells: neither destroys the
    unit's cells at once, so neither counts here."""
    if product.upper() not in _RED_CELL_PRODUCTS:
        return False
    return not _red_cells_ok(donor.abo, recipient.abo) or (
        product.upper() == "WB" and donor.abo != recipient.abo
    )


def _red_cell_donors(recipient: str) -> str:
    return ", ".join(g for g in ABO_GROUPS if _red_cells_ok(g, recipient))


def _plasma_donors(recipient: str) -> str:
    return ", ".join(g for g in ABO_GROUPS if _red_cells_ok(recipient, g))

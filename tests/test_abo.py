"""ABO/RhD compatibility against MODELS.md §7d: the exhaustive 8 x 8 red-cell and plasma
tables (validation target 3 of the clinical layer), whole blood and platelets."""

from __future__ import annotations

import itertools

import pytest

from hemolab._errors import HemolabError
from hemolab.events._abo import BloodGroup, compatibility, destroys_red_cells

# MODELS.md §7d, written out as the published chart gives it (recipient -> donors)
RED_CELLS = {"O": {"O"}, "A": {"A", "O"}, "B": {"B", "O"}, "AB": {"AB", "A", "B", "O"}}
PLASMA = {"O": {"O", "A", "B", "AB"}, "A": {"A", "AB"}, "B": {"B", "AB"}, "AB": {"AB"}}
GROUPS = [BloodGroup(abo, rh) for abo in ("O", "A", "B", "AB") for rh in (False, True)]


@pytest.mark.parametrize(("donor", "recipient"), list(itertools.product(GROUPS, GROUPS)))
def test_the_8x8_red_cell_and_plasma_tables_match_the_chart(
    donor: BloodGroup, recipient: BloodGroup
) -> None:
    rbc = compatibility("RBC", donor, recipient)
    rh_ok = recipient.rhd_positive or not donor.rhd_positive
    assert rbc.ok == (donor.abo in RED_CELLS[recipient.abo] and rh_ok), (donor, recipient)
    plasma = compatibility("PLASMA", donor, recipient)
    assert plasma.ok == (donor.abo in PLASMA[recipient.abo])  # RhD does not apply to plasma
    wb = compatibility("WB", donor, recipient)
    assert wb.ok == (donor.abo == recipient.abo and rh_ok)
    if not rbc.ok:
        assert "MODELS.md §7d" in rbc.reason and str(recipient) in rbc.reason
    # an acute haemolytic reaction: ABO-incompatible red cells only (not RhD, not plasma)
    assert destroys_red_cells("RBC", donor, recipient) == (
        donor.abo not in RED_CELLS[recipient.abo]
    )
    assert destroys_red_cells("WB", donor, recipient) == (donor.abo != recipient.abo)
    for product in ("PLASMA", "PLT_APH", "PLT_POOL"):
        assert not destroys_red_cells(product, donor, recipient)


def test_universal_donors_and_recipients() -> None:
    o_neg, ab_pos = BloodGroup.parse("O-"), BloodGroup.parse("AB pos")
    assert all(compatibility("RBC", o_neg, g).ok for g in GROUPS)
    assert all(compatibility("RBC", g, ab_pos).ok for g in GROUPS)
    assert all(compatibility("PLASMA", BloodGroup("AB"), g).ok for g in GROUPS)
    reason = compatibility("RBC", BloodGroup.parse("B+"), BloodGroup.parse("A+")).reason
    assert reason == (
        "RBC of group B+ for a A+ patient: ABO-incompatible red cells (A "
        "recipients receive O, A; MODELS.md §7d)"
    )


def test_platelets_prefer_identical_groups_and_protect_d_negative_women() -> None:
    a_pos, o_neg = BloodGroup.parse("A+"), BloodGroup.parse("O NEG")
    assert compatibility("PLT_APH", BloodGroup.parse("A-"), BloodGroup.parse("A-")).warning == ""
    mismatch = compatibility("PLT_POOL", BloodGroup.parse("A-"), o_neg)
    assert mismatch.ok and "not ABO-identical" in mismatch.warning
    assert compatibility("PLT_APH", a_pos, BloodGroup.parse("A-")).ok
    refused = compatibility(
        "PLT_APH", a_pos, BloodGroup.parse("A-"), female_of_childbearing_potential=True
    )
    assert not refused.ok and "child-bearing" in refused.reason
    unknown = compatibility("RBC", BloodGroup("O"), BloodGroup("A"))
    assert unknown.ok and "RhD" in unknown.warning


@pytest.mark.parametrize("text", ["", "C+", "A++", "ABO", "0+"])
def test_bad_blood_groups_are_refused(text: str) -> None:
    with pytest.raises(HemolabError, match="is not an ABO group"):
        BloodGroup.parse(text)
    with pytest.raises(HemolabError, match="product 'FFP' is not one of"):
        compatibility("FFP", BloodGroup("A"), BloodGroup("A"))

"""Wang 2010 romiplostim model: QE-TMDD pharmacokinetics and a precursor/platelet lifespan chain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hemolab.library._typical import TypicalRun
from hemolab.model import Covariate, Model, Observable, Parameter, State

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Wang YC, Krzyzanski W, Doshi S, Xiao JJ, Pérez-Ruixo JJ, Chow AT. Pharmacodynamics-mediated "
    "drug disposition (PDMDD) and precursor pool lifespan model for single dose of romiplostim "
    "in healthy subjects. AAPS J 2010;12(4):729-740. doi:10.1208/s12248-010-9234-9. Parameters: "
    "Table I, as transcribed in nlmixr2/nlmixr2lib inst/modeldb/specificDrugs/"
    "Wang_2010_romiplostim.R."
)

N_TRANSIT = 10
"""Age compartments in each chain (N_P = N_PLT = 10, Wang 2010 Methods)."""

_POS = (0.0, float("inf"))


def _chain(prefix: str, inflow: str, rate: str, initial: str, unit: str, what: str) -> list[State]:
    """``prefix1..prefix10``: a catenary chain fed by ``inflow``, each emptying at ``rate``."""
    states = []
    for i in range(1, N_TRANSIT + 1):
        into = inflow if i == 1 else f"{rate}*{prefix}{i - 1}"
        states.append(
            State(
                f"{prefix}{i}",
                f"{into} - {rate}*{prefix}{i}",
                initial=initial,
                unit=unit,
                positive=True,
                description=f"{what}, age compartment {i} of {N_TRANSIT}",
            )
        )
    return states


def romiplostim_wang2010() -> Model:
    """Wang 2010 romiplostim PDMDD model in healthy subjects (MODELS.md §6a).

    Two-compartment PK with first-order SC absorption and quasi-equilibrium binding to c-Mpl,
    whose total concentration follows the current platelet count (``Rtot = ξ·PLT``). Free drug
    ``Cf`` stimulates precursor production, ``k_in·(1 + Smax·Cf/(SC50 + Cf))``; megakaryocyte
    precursors (lifespan T_P 142 h) and platelets (T_PLT 253 h) are 10-compartment transit
    chains. Parameters are Wang 2010 Table I (fit to mean data, no IIV).

    Doses are in µg: SC doses go into ``A_dep`` (bioavailability ``F`` = 0.499), IV doses into
    ``A_c``. Per-kg doses need ``AMT_UNIT=ug/kg`` and use the ``WT`` covariate (default 70 kg),
    which also scales the central volume (``Vc`` is per kg). Concentrations are in ng/mL
    (= µg/L); ``PLT`` is in 10⁹/L and starts at ``PLT0`` (default 250).

    Examples
    --------
    >>> from hemolab.library._romiplostim import romiplostim_wang2010
    >>> m = romiplostim_wang2010()
    >>> m.parameter("T_PLT").value
    253.0
    """
    plt = "10*9/L"
    conc = "ng/mL"
    return Model(
        "romiplostim_wang2010",
        time_unit="h",
        states=[
            State(
                "A_dep",
                "-ka*A_dep",
                unit="ug",
                bioavailability="F",
                description="SC depot (dose × F)",
            ),
            State(
                "A_c",
                "ka*A_dep - (kel + kcp)*Cf*Vtot + kpc*A_p - kint*DR*Vtot",
                unit="ug",
                description="central romiplostim, free + bound (IV doses)",
            ),
            State("A_p", "kcp*Cf*Vtot - kpc*A_p", unit="ug", description="peripheral romiplostim"),
            *_chain("P", "k_in*(1 + S)", "ktr_P", "PLT0*T_P/(10*T_PLT)", plt, "precursors"),
            *_chain("L", "ktr_P*P10", "ktr_L", "PLT0/10", plt, "platelets"),
        ],
        parameters=[
            Parameter("ka", 0.0254, unit="h-1", bounds=_POS, description="SC absorption rate"),
            Parameter("F", 0.499, unit="1", bounds=(0.0, 1.0), description="SC bioavailability"),
            Parameter("Vc", 0.0683, unit="L/kg", bounds=_POS, description="central volume / kg"),
            Parameter("kel", 0.0382, unit="h-1", bounds=_POS, description="linear elimination"),
            Parameter("kcp", 0.0806, unit="h-1", bounds=_POS, description="central → peripheral"),
            Parameter("kpc", 0.0148, unit="h-1", bounds=_POS, description="peripheral → central"),
            Parameter(
                "kint", 0.173, unit="h-1", bounds=_POS, description="complex internalisation"
            ),
            # fg per platelet: fg × 10⁹/L = 10⁻⁶ g/L = ng/mL, so Rtot = xi·PLT is in ng/mL
            Parameter("xi", 0.0215, unit="fg", bounds=_POS, description="c-Mpl per platelet"),
            Parameter("KD", 0.131, unit=conc, bounds=_POS, description="dissociation constant"),
            Parameter("Smax", 11.2, unit="1", bounds=_POS, description="maximal stimulation"),
            Parameter("SC50", 0.0520, unit=conc, bounds=_POS, description="Cf at half Smax"),
            Parameter("T_P", 142.0, unit="h", bounds=_POS, description="precursor lifespan"),
            Parameter("T_PLT", 253.0, unit="h", bounds=_POS, description="platelet lifespan"),
            Parameter("PLT0", 250.0, unit=plt, bounds=_POS, description="baseline platelets"),
        ],
        covariates=[Covariate("WT", default=70.0, unit="kg", description="body weight")],
        assignments={
            "Vtot": "Vc*WT",
            "Ltot": " + ".join(f"L{i}" for i in range(1, N_TRANSIT + 1)),
            "Ctot": "A_c/Vtot",
            "Rtot": "xi*Ltot",
            # quasi-equilibrium free concentration (Wang 2010 Eq 5), written as published
            "Cf": "(Ctot - Rtot - KD + sqrt((Ctot - Rtot - KD)**2 + 4*KD*Ctot))/2",
            "DR": "Ctot - Cf",
            "S": "Smax*Cf/(SC50 + Cf)",
            "k_in": "PLT0/T_PLT",
            "ktr_P": f"{N_TRANSIT}/T_P",
            "ktr_L": f"{N_TRANSIT}/T_PLT",
        },
        observables=[
            Observable("PLT", "Ltot", unit=plt, description="platelet count"),
            Observable("Cfree", "Cf", unit=conc, description="free serum romiplostim"),
            Observable("Ctotal", "Ctot", unit=conc, description="total serum romiplostim"),
        ],
        citation=CITATION,
        description="TPO-mimetic thrombopoiesis: romiplostim QE-TMDD PK on c-Mpl (platelet-bound "
        "receptor) driving a 10-compartment megakaryocyte precursor and platelet lifespan chain.",
    )


def _events() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "ID": [1],
            "TIME": [0.0],
            "EVID": [1],
            "CMT": ["A_dep"],
            "AMT": [2.0],
            "AMT_UNIT": ["ug/kg"],
            "WT": [70.0],
        }
    )


def typical_run() -> TypicalRun:
    """A single 2 µg/kg SC dose in a 70-kg healthy subject (Wang 2010's highest SC dose)."""
    return TypicalRun(
        description="romiplostim 2 ug/kg SC single dose, 70 kg, 35 days",
        events=_events,
        t_end=35 * 24.0,
        dt=6.0,
        observable="PLT",
    )

"""Colijn & Mackey 2005 hematopoiesis delay model (Part II, cyclical neutropenia). EXPERIMENTAL."""

from __future__ import annotations

from hemolab.library._typical import TypicalRun
from hemolab.model import Model, Observable, Parameter, State

CITATION = (
    "Colijn C, Mackey MC. A mathematical model of hematopoiesis - I. Periodic chronic "
    "myelogenous leukemia. J Theor Biol 2005;237(2):117-132. doi:10.1016/j.jtbi.2005.03.033 "
    "(DOI believed, to verify). Colijn C, Mackey MC. A mathematical model of hematopoiesis - "
    "II. Cyclical neutropenia. J Theor Biol 2005;237(2):133-146. doi:10.1016/j.jtbi.2005.03.034 "
    "(DOI believed, to verify). Equations and the Part II parameter file as transcribed by "
    "radivot/myelo (myelo/R/colijn05b.R, myelo/inst/doc/colijnPars05b.R); MODELS.md §5."
)

_POS = (0.0, float("inf"))
_RATE = "d-1"
_Q, _N, _R, _P = "10*6/kg", "10*8/kg", "10*11/kg", "10*10/kg"


def _hill_rate(kmax: str, x: str, *, theta: str, power: str) -> str:
    """``kmax/(1 + (x/theta)**power)`` as an expression string."""
    return f"{kmax}/(1 + ({x}/{theta})**{power})"


def _kr(r: str) -> str:
    """Erythroid differentiation κR at ``r``: K̄r/(1 + Kr·R^m), R in 10^11 cells/kg."""
    return f"Krbar/(1 + Kr*({r}/Rref)**m)"


def _kp(p: str) -> str:
    """Megakaryocytic differentiation κP at ``p``: K̄p/(1 + Kp·P^r), P in 10^10 cells/kg."""
    return f"Kpbar/(1 + Kp*({p}/Pref)**r)"


def colijn_mackey() -> Model:
    """Colijn & Mackey 2005 stem-cell (Q) model with neutrophil, red-cell and platelet lines.

    EXPERIMENTAL: the parameters come from the ``myelo`` transcription of the papers' Table 1,
    which has documented unit/scale inconsistencies (factor-10 differences in A_R and A_P
    between Parts I and II, P* = 2.94 listed but the model settles near 1.92; MODELS.md §5).
    Re-derive them from the two papers before relying on absolute numbers.

    Quiescent stem cells Q re-enter proliferation at β(Q) = k0/(1 + (Q/θ2)^s) and return
    A_Q·β after τS (A_Q = 2·e^{−γS·τS}); they differentiate at κN(N) = f0/(1 + (N/θ1)^n),
    κR(R) = K̄r/(1 + Kr·R^m), κP(P) = K̄p/(1 + Kp·P^r). Each line is amplified (A_N, A_R, A_P)
    over its maturation delay (τNM, τRM, τPM). Red cells and platelets die at a fixed age
    (τRS, τPS; τRS = τsum − τRM − τRet), neutrophils at rate γN::

        dQ/dt = −(β(Q) + κN(N) + κR(R) + κP(P))·Q + A_Q·β(Q_τS)·Q_τS
        dN/dt = −γN·N + A_N·κN(N_τNM)·Q_τNM
        dR/dt = −γR·R + A_R·(κR(R_τRM)·Q_τRM − e^{−γR·τRS}·κR(R_{τRM+τRS})·Q_{τRM+τRS})
        dP/dt = −γP·P + A_P·(κP(P_τPM)·Q_τPM − e^{−γP·τPS}·κP(P_{τPM+τPS})·Q_{τPM+τPS})

    (X_τ is X(t − τ).) The R equation reads κR at the delayed R, as MODELS.md §5 writes it;
    ``myelo``'s colijn05b.R reads it at the delayed P (``kRt`` uses ``Pt``, apparently a typo:
    the equilibrium would then be R ≈ 1.4×10³).

    Units are scaled as in ``myelo``: Q in 10^6, N in 10^8, R in 10^11, P in 10^10 cells/kg,
    so the amplification factors are given in 10^2, 10^5 and 10^4 (A_N = 752 ×10^2 =
    7.52×10^4 neutrophils per committed stem cell). Kr and Kp multiply R^m and P^r in those
    scaled units, written (R/Rref)^m and (P/Pref)^r with the fixed unit references Rref =
    1×10^11/kg and Pref = 1×10^10/kg so that the exponents act on pure numbers.

    Defaults are the Part II parameter file (``colijnPars05b``), a *normal* set: from the
    constant history Q = 1.1, N = 7, R = 3.5, P = 2.94 it settles (R slowly, over thousands of
    days) to the stable equilibrium Q = 1.0100, N = 6.5731, R = 3.4301, P = 1.9167; MODELS.md
    §5 target 3 quotes 1.011, 6.58, 3.44, 1.92, the state near day 1000. A_N × 0.1 with
    k0 × 0.5 gives sustained oscillations of period ≈ 20 days (target 4, exploratory).

    The observables stay in the scaled per-kilogram units. Converted with a 70 mL/kg blood
    volume the normal state would be ANC ≈ 9.4×10⁹/L, above the normal range 1.8–7.7×10⁹/L
    (MODELS.md §7), which suggests N is the total blood neutrophil pool (circulating and
    marginated), not the counted ANC; no ANC/RBC/PLT conversion is offered until the pools
    are verified.
    """
    q_tau_s = "Q(t - tauS)"
    return Model(
        "colijn_mackey",
        time_unit="d",
        states=[
            State(
                "Q",
                "-(beta + kN + kR + kP)*Q + AQ*"
                + _hill_rate("k0", q_tau_s, theta="theta2", power="s")
                + f"*{q_tau_s}",
                initial="Q0",
                history="Q0",
                unit=_Q,
                positive=True,
                description="quiescent hematopoietic stem cells",
            ),
            State(
                "N",
                "-gammaN*N + AN*"
                + _hill_rate("f0", "N(t - tauNM)", theta="theta1", power="n")
                + "*Q(t - tauNM)",
                initial="N0",
                history="N0",
                unit=_N,
                positive=True,
                description="blood neutrophils",
            ),
            # summed delays need their parentheses: the parser reads X(t - a - b) as a delay
            # of a - b (it keeps everything after "t -" as one expression)
            State(
                "R",
                f"-gammaR*R + AR*({_kr('R(t - tauRM)')}*Q(t - tauRM) - exp(-gammaR*tauRS)*"
                f"{_kr('R(t - (tauRM + tauRS))')}*Q(t - (tauRM + tauRS)))",
                initial="R0",
                history="R0",
                unit=_R,
                positive=True,
                description="erythrocytes",
            ),
            State(
                "P",
                f"-gammaP*P + AP*({_kp('P(t - tauPM)')}*Q(t - tauPM) - exp(-gammaP*tauPS)*"
                f"{_kp('P(t - (tauPM + tauPS))')}*Q(t - (tauPM + tauPS)))",
                initial="P0",
                history="P0",
                unit=_P,
                positive=True,
                description="platelets",
            ),
        ],
        parameters=[
            # stem cells
            Parameter("k0", 8.0, unit=_RATE, bounds=_POS, description="maximal re-entry rate"),
            Parameter("theta2", 0.3, unit=_Q, bounds=_POS, description="re-entry half-effect Q"),
            Parameter("s", 4.0, unit="1", bounds=_POS, description="re-entry Hill exponent"),
            Parameter("gammaS", 0.07, unit=_RATE, bounds=_POS, description="apoptosis in cycle"),
            Parameter("tauS", 2.8, unit="d", bounds=_POS, description="stem-cell cycle time"),
            # neutrophils
            Parameter("f0", 0.40, unit=_RATE, bounds=_POS, description="maximal κN"),
            Parameter("theta1", 0.36, unit=_N, bounds=_POS, description="κN half-effect N"),
            Parameter("n", 1.0, unit="1", bounds=_POS, description="κN Hill exponent"),
            Parameter("gammaN", 2.4, unit=_RATE, bounds=_POS, description="neutrophil loss"),
            Parameter("tauNM", 3.5, unit="d", bounds=_POS, description="neutrophil maturation"),
            Parameter("AN", 752.0, unit="10*2", bounds=_POS, description="neutrophil amplif."),
            # erythrocytes
            Parameter("Krbar", 1.17, unit=_RATE, bounds=_POS, description="maximal κR"),
            Parameter("Kr", 0.0382, unit="1", bounds=_POS, description="κR coefficient"),
            Parameter("m", 6.96, unit="1", bounds=_POS, description="κR exponent"),
            Parameter("gammaR", 0.001, unit=_RATE, bounds=_POS, description="red-cell loss"),
            Parameter("tauRM", 6.0, unit="d", bounds=_POS, description="erythroid maturation"),
            Parameter("tauSum", 120.0, unit="d", bounds=_POS, description="red-cell total age"),
            Parameter("tauRet", 2.8, unit="d", bounds=_POS, description="reticulocyte time"),
            Parameter("AR", 5.63, unit="10*5", bounds=_POS, description="erythroid amplif."),
            Parameter(
                "Rref", 1.0, unit=_R, bounds=(1.0, 1.0), description="unit of R in κR (fixed)"
            ),
            # platelets
            Parameter("Kpbar", 0.372, unit=_RATE, bounds=_POS, description="maximal κP"),
            Parameter("Kp", 11.66, unit="1", bounds=_POS, description="κP coefficient"),
            Parameter("r", 1.29, unit="1", bounds=_POS, description="κP exponent"),
            Parameter("gammaP", 0.15, unit=_RATE, bounds=_POS, description="platelet loss"),
            Parameter("tauPM", 7.0, unit="d", bounds=_POS, description="megakaryocyte maturation"),
            Parameter("tauPS", 9.5, unit="d", bounds=_POS, description="platelet lifespan"),
            Parameter("AP", 28.2, unit="10*4", bounds=_POS, description="platelet amplif."),
            Parameter(
                "Pref", 1.0, unit=_P, bounds=(1.0, 1.0), description="unit of P in κP (fixed)"
            ),
            # initial values = constant history (myelo Qss, Nss, Rss, Pss; Table 1 Q*, N*, R*, P*)
            Parameter("Q0", 1.1, unit=_Q, bounds=_POS, description="initial and past Q"),
            Parameter("N0", 7.0, unit=_N, bounds=_POS, description="initial and past N"),
            Parameter("R0", 3.5, unit=_R, bounds=_POS, description="initial and past R"),
            Parameter("P0", 2.94, unit=_P, bounds=_POS, description="initial and past P"),
        ],
        assignments={
            "beta": _hill_rate("k0", "Q", theta="theta2", power="s"),
            "kN": _hill_rate("f0", "N", theta="theta1", power="n"),
            "kR": _kr("R"),
            "kP": _kp("P"),
            "AQ": "2*exp(-gammaS*tauS)",
            "tauRS": "tauSum - tauRM - tauRet",
        },
        observables=[
            Observable("Neut", "N", unit=_N, description="blood neutrophils per kg (model N)"),
            Observable("RBC_kg", "R", unit=_R, description="erythrocytes per kg (model R)"),
            Observable("PLT_kg", "P", unit=_P, description="platelets per kg (model P)"),
            Observable("HSC", "Q", unit=_Q, description="quiescent stem cells per kg (model Q)"),
        ],
        # the untreated run keeps ~1,000 steps within its longest delay: one compilation
        history_segments=1024,
        citation=CITATION,
        description="Experimental: stem-cell delay model feeding neutrophil, red-cell and "
        "platelet lines (Colijn & Mackey 2005, Part II normal parameter file); destabilised "
        "stem-cell control gives cyclical neutropenia.",
    )


def typical_run() -> TypicalRun:
    """The untreated Part II normal parameter file over 200 days, daily output."""
    return TypicalRun(
        description="untreated, Colijn & Mackey 2005 Part II normal parameter file "
        "(settles to its stable steady state; no oscillation)",
        events=lambda: None,
        t_end=200.0,
        dt=1.0,
        observable="Neut",
    )

"""Primitive action codes: the contract between the schedule builder and the solver.

A schedule is, per subject, one table of actions sorted by ``(time, class, sequence)``;
the solver walks it with a pointer (see ``hemolab.solve._loop``).
"""

from __future__ import annotations

OP_NOP = 0  # padding (time = +inf) or a pure stop (a step boundary, e.g. a DDE discontinuity)
OP_OUTPUT = 1  # write states and observables into output slot `target`
OP_BOLUS = 2  # y[target] += value * F[target]
OP_RATE = 3  # r[target] += value (infusion rate change, no F)
OP_RATE_F = 4  # r[target] += value * F[target]
OP_REPLACE = 5  # y[target] = value (EVID 5)
OP_MULTIPLY = 6  # y[target] *= value (EVID 6)
OP_RESET = 7  # y = initial(p), r = 0, delay history restarted (EVID 3/4)
OP_PARAM = 8  # p[target] = value (target indexes model.inputs)
OP_PHLEBOTOMY = 9  # blood states scaled by (1 - value / blood_volume_ml)
OP_ADD = 10  # y[target] += value (no F)
OP_OFF = 11  # compartment `target` off: amount 0, not integrated until a dose or OP_ON
OP_ON = 12  # compartment `target` on again

OP_NAMES = {
    OP_NOP: "nop",
    OP_OUTPUT: "output",
    OP_BOLUS: "bolus",
    OP_RATE: "rate",
    OP_RATE_F: "rate_f",
    OP_REPLACE: "replace",
    OP_MULTIPLY: "multiply",
    OP_RESET: "reset",
    OP_PARAM: "param",
    OP_PHLEBOTOMY: "phlebotomy",
    OP_ADD: "add",
    OP_OFF: "off",
    OP_ON: "on",
}

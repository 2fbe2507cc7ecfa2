"""Diseases as named, reversible changes to a model: parameters scaled and first-order losses
added while the disease is active, switched on and off by one parameter.

``Disease("marrow_suppression", scale={"kprol": 0.3}).apply(model)`` returns the model with a
switch parameter ``dis_marrow_suppression`` (1: active from the start, the default; 0:
absent) and the disease's factors as parameters. Onset and resolution at given times are
parameter changes of the switch (``EVENT=param``, or a protocol phase's ``parameters``), so a
disease can come, go and come back, and two diseases compose (apply one, then the other).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hemolab._errors import ModelError

__all__ = ["Disease"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Disease:
    """A named change to a model's dynamics.

    Parameters
    ----------
    name
        Identifier; the switch parameter is ``dis_<name>``.
    scale
        ``parameter → factor`` (> 0): the parameter is multiplied by the factor wherever
        the dynamics read it (state equations and assignments; not initial values, so a
        disease present from the start does not move the model's baseline).
    loss
        ``state → rate`` (>= 0, per model time unit): ``- rate * state`` added to the
        state's equation (cells destroyed by the disease).
    active
        Whether the disease is active from the start (the switch's initial value).
    source
        Where the effect comes from (a citation, or "assumption").
    """

    name: str
    scale: Mapping[str, float] = field(default_factory=dict)
    loss: Mapping[str, float] = field(default_factory=dict)
    active: bool = True
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ModelError(
                f"disease name {self.name!r} is not valid: a letter, then letters, digits, '_'"
            )
        if not self.scale and not self.loss:
            raise ModelError(f"disease {self.name!r} changes nothing (give scale or loss)")
        for p, f in self.scale.items():
            if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
                raise ModelError(f"disease {self.name!r}: scale of {p!r} must be > 0, got {f!r}")
        for s, r in self.loss.items():
            if not (isinstance(r, (int, float)) and math.isfinite(r) and r >= 0):
                raise ModelError(f"disease {self.name!r}: loss of {s!r} must be >= 0, got {r!r}")

    @property
    def switch(self) -> str:
        """The parameter that turns the disease on (1) and off (0)."""
        return f"dis_{self.name}"

    def apply(self, model: Any) -> Any:
        """``model`` with this disease (a new model named ``<model>+<disease>``)."""
        from hemolab.model._model import Parameter

        taken = set(model.parameter_names) | set(model.state_names) | set(model.assignments)
        if self.switch in taken:
            raise ModelError(f"model {model.name!r} already has disease {self.name!r}")
        unknown = sorted(set(self.scale) - set(model.parameter_names))
        if unknown:
            raise ModelError(
                f"disease {self.name!r} scales {unknown[0]!r}, which is not a parameter of "
                f"model {model.name!r} (parameters: {', '.join(model.parameter_names)})"
            )
        unknown = sorted(set(self.loss) - set(model.state_names))
        if unknown:
            raise ModelError(
                f"disease {self.name!r} adds a loss to {unknown[0]!r}, which is not a state of "
                f"model {model.name!r} (states: {', '.join(model.state_names)})"
            )
        on = self.switch
        factors = {p: f"{on}_{p}" for p in self.scale}
        subst = {p: f"({p} * (1 + {on} * ({factors[p]} - 1)))" for p in self.scale}

        def scaled(expr: Any) -> Any:
            if not subst or isinstance(expr, (int, float)) or expr is None:
                return expr
            text = str(expr)
            return re.sub(
                r"(?<![A-Za-z0-9_.])(" + "|".join(map(re.escape, subst)) + r")(?![A-Za-z0-9_(])",
                lambda m: subst[m.group(1)],
                text,
            )

        states = []
        for s in model.states:
            ddt = scaled(s.ddt)
            if s.name in self.loss:
                ddt = f"({ddt}) - {on} * {on}_loss_{s.name} * {s.name}"
            states.append(replace(s, ddt=ddt))
        params = [
            *model.parameters,
            Parameter(on, 1.0 if self.active else 0.0, bounds=(0.0, 1.0),
                      description=f"disease {self.name}: 1 active, 0 absent"),
            *(Parameter(f, float(self.scale[p]), bounds=(0.0, math.inf),
                        description=f"disease {self.name}: factor on {p}")
              for p, f in factors.items()),
            *(Parameter(f"{on}_loss_{s}", float(r), unit=f"1/{model.time_unit}",
                        bounds=(0.0, math.inf),
                        description=f"disease {self.name}: added loss rate of {s}")
              for s, r in self.loss.items()),
        ]  # fmt: skip
        assignments = {k: scaled(v) for k, v in model.assignments.items()}
        note = f"disease {self.name}" + (f" ({self.source})" if self.source else "")
        return model.replace(
            name=f"{model.name}+{self.name}",
            states=tuple(states),
            parameters=tuple(params),
            assignments=assignments,
            description=(model.description + "\n" if model.description else "") + note,
        )

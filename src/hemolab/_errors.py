"""hemolab's error hierarchy.

Every error hemolab raises on purpose derives from :class:`HemolabError`; where one replaces a
built-in ``ValueError``/``TypeError`` it subclasses that too, so ``except ValueError`` keeps
working for callers that do not know hemolab::

    HemolabError
    ├── ModelError (ValueError)            a model definition is invalid
    │   ├── UnknownSymbolError             an expression names something undeclared
    │   ├── MissingParameterError          a required value is not given
    │   ├── DelayError                     delayed state without history, bad delay
    │   └── UnitError                      units that cannot agree
    ├── DatasetError (ValueError)          an event dataset is invalid (lists every violation)
    ├── ScheduleError (ValueError)         events cannot be applied to this model
    ├── SolveError (RuntimeError)          throw=True and some patients failed
    └── UnsupportedError (NotImplementedError)  a feature hemolab does not (yet) support

    HemolabWarning (UserWarning)           something the user should know (ties, defaults)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HemolabError(Exception):
    """Base class of every error hemolab raises on purpose."""


class ModelError(HemolabError, ValueError):
    """A model definition is invalid; the message names the element."""


class UnknownSymbolError(ModelError):
    """An expression uses a name that is neither a state, parameter, covariate nor assignment."""


class MissingParameterError(ModelError):
    """A parameter (or covariate) needed by the model or the simulation has no value."""


class DelayError(ModelError):
    """A delayed state has no history, or a delay is not a positive constant."""


class UnitError(ModelError):
    """Units that cannot be reconciled (dimension mismatch, unknown unit)."""


@dataclass(frozen=True)
class DatasetIssue:
    """One violation found in a dataset: where it is and what was expected."""

    file: str
    row: int | None  # 1-based data row (header excluded), None for file-level issues
    column: str | None
    message: str
    # what ``row`` and ``column`` count in this format: a FHIR bundle has entries and elements
    row_name: str = "row"
    column_name: str = "column"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", {self.row_name} {self.row}"
        if self.column is not None:
            where += f", {self.column_name} {self.column}"
        return f"{where}: {self.message}"


class DatasetError(HemolabError, ValueError):
    """A dataset (events, §A; lab history, §B) violates DATA-FORMATS. Carries every violation
    found, not just one; ``what`` names the kind of dataset in the message."""

    def __init__(self, issues: Sequence[DatasetIssue], what: str = "event dataset"):
        self.issues = tuple(issues)
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} in the {what}:"
        lines = [head, *(f"  - {i}" for i in self.issues[:50])]
        if n > 50:
            lines.append(f"  ... and {n - 50} more")
        super().__init__("\n".join(lines))


class ScheduleError(HemolabError, ValueError):
    """Events that cannot be applied to the model (unknown compartment, missing covariate...)."""


class SolveError(HemolabError, RuntimeError):
    """Raised by ``throw=True`` when some patients did not solve; lists their batch indices."""

    def __init__(self, message: str, indices: Sequence[int] = ()):
        self.indices = tuple(int(i) for i in indices)
        super().__init__(message)


class UnsupportedError(HemolabError, NotImplementedError):
    """A feature that hemolab does not support (yet); the message says what and where."""


class SBMLError(HemolabError):
    """An SBML or Antimony document that cannot be read: the message names the element (id)
    and, where libsbml gives one, the line."""


class UnsupportedSBMLError(UnsupportedError):
    """A valid SBML construct that hemolab does not simulate (algebraic rules, fast reactions,
    packages...): the message names the element; never a silently wrong simulation."""


class HemolabWarning(UserWarning):
    """Base class of hemolab's warnings (dataset ties, defaults applied, ...)."""

"""SBML and Antimony: import into hemolab models, export, SED-ML experiments, and the SBML Test
Suite runner."""

from hemolab.sbml._export import write_sbml as write_sbml
from hemolab.sbml._import import (
    SBMLImport as SBMLImport,
    import_antimony as import_antimony,
    import_sbml as import_sbml,
    read_antimony as read_antimony,
    read_sbml as read_sbml,
)
from hemolab.sbml._sedml import SedmlRun as SedmlRun, run_sedml as run_sedml

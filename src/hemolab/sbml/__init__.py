"""SBML and Antimony: import into hemolab models, export, and the SBML Test Suite runner."""

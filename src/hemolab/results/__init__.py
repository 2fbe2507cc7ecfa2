"""Result tables (DATA-FORMATS §C)."""

from hemolab.results._results import (
    Results as Results,
    provenance as provenance,
    read_metadata as read_metadata,
)

"""Treatment search: declared spaces (Python or TOML) with constraints, and the optimisers
that search them (grid, Latin hypercube, CMA-ES), seeded and reproducible."""

from hemolab.search._optimise import (
    SearchResult as SearchResult,
    cma_es as cma_es,
    grid_search as grid_search,
    latin_hypercube as latin_hypercube,
)
from hemolab.search._protocol_search import (
    Objective as Objective,
    ProtocolSearch as ProtocolSearch,
    ProtocolSearchResult as ProtocolSearchResult,
    read_protocol_search as read_protocol_search,
    run_protocol_search as run_protocol_search,
)
from hemolab.search._space import (
    Categorical as Categorical,
    Constraint as Constraint,
    Continuous as Continuous,
    Integer as Integer,
    SearchSpace as SearchSpace,
    SearchSpaceError as SearchSpaceError,
    read_search_space as read_search_space,
)

__all__ = [
    "Categorical",
    "Constraint",
    "Continuous",
    "Integer",
    "Objective",
    "ProtocolSearch",
    "ProtocolSearchResult",
    "SearchResult",
    "SearchSpace",
    "SearchSpaceError",
    "cma_es",
    "grid_search",
    "latin_hypercube",
    "read_protocol_search",
    "read_search_space",
    "run_protocol_search",
]

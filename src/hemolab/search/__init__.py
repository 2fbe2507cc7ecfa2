"""Treatment search: declared spaces (Python or TOML) with constraints, and the optimisers
that search them (grid, Latin hypercube, CMA-ES), seeded and reproducible."""

from hemolab.search._optimise import (
    SearchResult as SearchResult,
    cma_es as cma_es,
    grid_search as grid_search,
    latin_hypercube as latin_hypercube,
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
    "SearchResult",
    "SearchSpace",
    "SearchSpaceError",
    "cma_es",
    "grid_search",
    "latin_hypercube",
    "read_search_space",
]

"""Published hematology models, each with its citation, typical regimen and tests."""

from hemolab.library._agoram import agoram_darbepoetin as agoram_darbepoetin
from hemolab.library._colijn_mackey import colijn_mackey as colijn_mackey
from hemolab.library._friberg import (
    friberg_docetaxel as friberg_docetaxel,
    friberg_docetaxel_kloft2006 as friberg_docetaxel_kloft2006,
)
from hemolab.library._friberg_paclitaxel import friberg_paclitaxel as friberg_paclitaxel
from hemolab.library._friberg_platelets import friberg_platelets as friberg_platelets
from hemolab.library._mackey_glass import mackey_glass as mackey_glass
from hemolab.library._michor import michor_cml as michor_cml
from hemolab.library._registry import (
    get_model as get_model,
    list_models as list_models,
    typical_run as typical_run,
)
from hemolab.library._romiplostim import romiplostim_wang2010 as romiplostim_wang2010
from hemolab.library._typical import TypicalRun as TypicalRun

"""Published hematology models, each with its citation."""

from hemolab.library._agoram import agoram_darbepoetin as agoram_darbepoetin
from hemolab.library._friberg import friberg_docetaxel as friberg_docetaxel
from hemolab.library._mackey_glass import mackey_glass as mackey_glass
from hemolab.library._michor import michor_cml as michor_cml
from hemolab.library._registry import get_model as get_model, list_models as list_models
from hemolab.library._romiplostim import romiplostim_wang2010 as romiplostim_wang2010

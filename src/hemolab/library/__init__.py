"""Published hematology models, each with its citation."""

from hemolab.library._friberg import friberg_docetaxel as friberg_docetaxel
from hemolab.library._mackey_glass import mackey_glass as mackey_glass
from hemolab.library._registry import get_model as get_model, list_models as list_models

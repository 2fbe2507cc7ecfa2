"""``hemolab serve``: the web explorer (FastAPI, server-rendered pages, a JSON API).

Needs the ``web`` extra (``pip install 'hemolab[web]'``). Design note 030.
"""

from hemolab.web._app import create_app as create_app
from hemolab.web._users import (
    ROLES as ROLES,
    User as User,
    UserError as UserError,
    UserStore as UserStore,
)

__all__ = ["ROLES", "User", "UserError", "UserStore", "create_app"]

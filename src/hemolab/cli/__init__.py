"""The ``hemolab`` command line."""

from hemolab.cli._app import app as app, main as main

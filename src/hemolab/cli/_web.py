"""``hemolab serve`` and ``hemolab users add|grant|revoke|list``: the web explorer and its
accounts (design note 030). Passwords come from a prompt or stdin, never from an argument."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console

__all__ = ["serve", "users_app"]

StoreDir = Annotated[Path, typer.Option("--store", help="Store directory.")]
_HINT = "the web explorer needs its extra: pip install 'hemolab[web]'"


def _users(store: Path):
    try:
        from hemolab.web._users import UserStore
    except ImportError:
        raise _fail(_HINT) from None
    return UserStore(store)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    store: StoreDir = Path("hemolab-store"),
) -> None:
    """Serve the web explorer over a store (http://HOST:PORT; API at /openapi.json).

    Binds to 127.0.0.1 unless told otherwise: put a TLS proxy in front before exposing it.
    Add accounts first with `hemolab users add NAME --role viewer|analyst|admin`.
    """
    try:
        import uvicorn

        from hemolab.web import create_app
    except ImportError:
        raise _fail(_HINT) from None
    if not 0 < port < 65536:
        raise _fail(f"--port must be within 1-65535, got {port}")
    app = create_app(store)
    if not app.state.web.users.users():
        console.print("[yellow]no users yet:[/] add one with hemolab users add NAME --role admin")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]warning:[/] listening on {host}: browsers keep the session cookie "
            "(Secure) only over HTTPS there; put a TLS proxy in front",
            highlight=False,
        )
    console.print(f"hemolab serve: http://{host}:{port} (store {store})", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                proxy_headers=False)  # fmt: skip


users_app = typer.Typer(
    help="Accounts of the web explorer: add users, grant and revoke patients, list them.",
    no_args_is_help=True,
    add_completion=False,
)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="viewer, analyst or admin.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin's first line.")
    ] = False,
    store: StoreDir = Path("hemolab-store"),
) -> None:
    """Add a user (the password is asked for twice, or read from stdin)."""
    from hemolab.web._users import ROLES

    if role not in ROLES:
        raise _fail(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        _users(store).add(name, role, password)
        _audit(store, "add user", None, f"{name} ({role})")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"user {name} ({role}) added", highlight=False)


def _audit(store: Path, action: str, pseudonym: str | None, detail: str) -> None:
    from hemolab.store import Store

    with Store(store) as st:
        st.audit(action, pseudonym, detail)


def _known(store: Path, pseudonym: str) -> None:
    from hemolab.store import Store
    from hemolab.web._users import check_pseudonym

    check_pseudonym(pseudonym)
    with Store(store) as st:
        st._known(pseudonym)


@users_app.command("grant")
def grant(
    name: Annotated[str, typer.Argument(help="User name.")],
    pseudonym: Annotated[str, typer.Argument(help="A stored patient's pseudonym.")],
    store: StoreDir = Path("hemolab-store"),
) -> None:
    """Let a user see a stored patient."""
    try:
        _known(store, pseudonym)
        _users(store).grant(name, pseudonym)
        _audit(store, "grant", pseudonym, f"to {name}")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{pseudonym} granted to {name}", highlight=False)


@users_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="User name.")],
    pseudonym: Annotated[str, typer.Argument(help="The patient's pseudonym.")],
    store: StoreDir = Path("hemolab-store"),
) -> None:
    """Take a patient away from a user (their open pages stop showing it at once)."""
    try:
        gone = _users(store).revoke(name, pseudonym)
        if gone:
            _audit(store, "revoke", pseudonym, f"from {name}")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{pseudonym} revoked from {name}" if gone else "there was no such grant",
                  highlight=False)  # fmt: skip


@users_app.command("list")
def list_(
    store: StoreDir = Path("hemolab-store"),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the users, their roles and how many patients each may see."""
    rows = _users(store).users()
    if json_out:
        print(json.dumps({"users": rows}, indent=2))
        return
    table = Table("user", "role", "patients", title="web explorer users")
    for r in rows:
        table.add_row(r["name"], r["role"], str(r["n_patients"]))
    console.print(table)

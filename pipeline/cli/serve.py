"""`callqa serve` (the workbench) and `callqa user ...` (who may log in to it)."""

from __future__ import annotations

import getpass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOption, VerboseOption, app, expected_failures, stdout

user_app = typer.Typer(no_args_is_help=True, help="Add, list and remove the workbench's users.")
app.add_typer(user_app, name="user")

UsersOption = Annotated[Path | None, typer.Option("--users", help="The users file (default: web.users_file, "
                                                  "./callqa-users.yaml).", dir_okay=False)]


class RoleChoice(StrEnum):
    qa = "qa"
    supervisor = "supervisor"
    manager = "manager"


@app.command()
@expected_failures
def serve(
    store: Annotated[str | None, typer.Option("--store", help="A folder or s3://bucket/prefix (default: "
                                              "run.store).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    users: UsersOption = None,
    config: ConfigOption = None,
    verbose: VerboseOption = 0,
) -> None:
    """The QA lead's workbench: calls with their audio and transcripts, reviews, calibration, lexicons, report."""
    import uvicorn

    from pipeline.errors import ConfigError
    from pipeline.settings import load_settings
    from pipeline.support.logs import configure_logging, register_secrets
    from pipeline.web.app import create_app

    configure_logging(verbose)
    settings = _with_users(load_settings(config), users)
    if store:
        settings = settings.model_copy(update={"run": settings.run.model_copy(update={"store": store})})
    register_secrets(settings)
    if not settings.web.users_file.is_file() and not settings.web.trusted_user_header:
        raise ConfigError(f"no users file {settings.web.users_file}: add a user first "
                          f"(callqa user add LOGIN --role qa --name NAME)")
    stdout.print(f"indexing the calls of {settings.run.store} ...")
    application = create_app(settings)
    stdout.print(f"callqa workbench on http://{host}:{port}/ ({application.state.bench.index.count()} calls; "
                 f"Ctrl+C stops it)")
    # X-Forwarded-For is applied inside the app, after it kept the connection's own peer for the trusted-header
    # check (pipeline/web/security.py, KeepPeer).
    uvicorn.run(application, host=host, port=port, log_level="warning" if verbose == 0 else "info",
                proxy_headers=False, server_header=False)


def _with_users(settings, users: Path | None):
    if users is None:
        return settings
    return settings.model_copy(update={"web": settings.web.model_copy(update={"users_file": users})})


def _book(users: Path | None, config: Path | None):
    from pipeline.settings import load_settings
    from pipeline.web.users import UserBook

    return UserBook(_with_users(load_settings(config), users).web.users_file)


@user_app.command("add")
@expected_failures
def add_user(
    login: Annotated[str, typer.Argument(help="The login (letters, digits, . _ @ -).")],
    role: Annotated[RoleChoice, typer.Option("--role", help="qa: reviews and lexicons; supervisor: every call "
                                             "and the report; manager: their own calls.")],
    name: Annotated[str | None, typer.Option("--name", help="The name people see (default: the login).")] = None,
    bitrix24_user_id: Annotated[str | None, typer.Option("--bitrix24-user-id", help="A manager's Bitrix24 user "
                                                         "id: the calls they may open.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard "
                                                 "input (scripts) instead of asking.")] = False,
    sso_only: Annotated[bool, typer.Option("--sso-only", help="No password: the user logs in only through the "
                                           "proxy's trusted header.")] = False,
    users: UsersOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a user, or change one (role, name, password). The password is asked twice, or read from stdin; it is
    never an argument (arguments show in the process list and the shell's history)."""
    from pipeline.errors import ConfigError

    book = _book(users, config)
    password: str | None = None
    if not sso_only:
        if password_stdin:
            password = typer.get_text_stream("stdin").readline().rstrip("\n")
        else:
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                raise ConfigError("the passwords differ")
    user = book.add(login, name=name or login, role=role.value, password=password,
                    bitrix24_user_id=bitrix24_user_id)
    stdout.print(f"{user.login} ({user.role}) saved in {book.path}")


@user_app.command("list")
@expected_failures
def list_users(users: UsersOption = None, config: ConfigOption = None) -> None:
    """The users: login, role, name, Bitrix24 user id (never the hashes)."""
    from rich.table import Table

    book = _book(users, config)
    table = Table("login", "role", "name", "bitrix24 user", "password", box=None)
    for user in book.users():
        table.add_row(user.login, user.role, user.name, user.bitrix24_user_id or "",
                      "set" if user.password_hash else "sso only")
    stdout.print(table)


@user_app.command("remove")
@expected_failures
def remove_user(login: Annotated[str, typer.Argument(help="The login.")], users: UsersOption = None,
                config: ConfigOption = None) -> None:
    """Remove a user; their open sessions end with their next request."""
    from pipeline.errors import ConfigError

    book = _book(users, config)
    if not book.remove(login):
        raise ConfigError(f"no user {login!r} in {book.path}")
    stdout.print(f"{login} removed from {book.path}")


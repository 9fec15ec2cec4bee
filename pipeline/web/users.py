"""The workbench's users: a YAML file of logins, names, roles and argon2 password hashes.

    users:
      - login: anna
        name: Анна Петрова
        role: qa                    # qa | supervisor | manager
        bitrix24_user_id: null      # a manager's PORTAL_USER_ID: the calls they may open
        password_hash: $argon2id$v=19$m=65536,t=3,p=4$...

`callqa user add|list|remove` edit it; the server reads it at each login, so a removed user is out at once (their
session ends on the next request). The file is written atomically with mode 0600: it holds password hashes.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.support.fileio import write_text_atomic

__all__ = ["ROLES", "Role", "User", "UserBook"]

Role = Literal["qa", "supervisor", "manager"]
ROLES: tuple[Role, ...] = ("qa", "supervisor", "manager")
_LOGIN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class User(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    login: str = Field(pattern=_LOGIN.pattern)
    name: str
    role: Role
    bitrix24_user_id: str | None = None
    password_hash: str | None = Field(None, description="None: only single sign-on (the trusted header)")

    def sees_all_calls(self) -> bool:
        return self.role in ("qa", "supervisor")


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User] = []


class UserBook:
    """The users file: read on every look-up (it is small), written whole and atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def users(self) -> list[User]:
        """Every user; an absent file has none.

        Raises:
            ConfigError: the file is not a valid users file (named, with the problem).
        """
        if not self.path.is_file():
            return []
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
            return _UsersFile.model_validate(data).users
        except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as error:
            raise ConfigError(f"invalid users file {self.path}: {error}") from error

    def __iter__(self) -> Iterator[User]:
        return iter(self.users())

    def get(self, login: str) -> User | None:
        return next((user for user in self.users() if user.login == login), None)

    def add(self, login: str, *, name: str, role: Role, password: str | None,
            bitrix24_user_id: str | None = None) -> User:
        """Add a user, or replace the one with this login (a new password, role or name).

        Raises:
            ConfigError: a bad login, a manager without a Bitrix24 user id, or a password shorter than 8.
        """
        if not _LOGIN.match(login):
            raise ConfigError(f"bad login {login!r}: letters, digits and . _ @ - only, at most 64")
        if role == "manager" and not bitrix24_user_id:
            raise ConfigError("a manager needs --bitrix24-user-id: it decides which calls they may open")
        if password is not None and len(password) < 8:
            raise ConfigError("the password is too short: at least 8 characters")
        user = User(login=login, name=name, role=role, bitrix24_user_id=bitrix24_user_id,
                    password_hash=_hasher.hash(password) if password is not None else None)
        self._save([*(u for u in self.users() if u.login != login), user])
        return user

    def remove(self, login: str) -> bool:
        """Remove the user; False when there was none with this login."""
        users = self.users()
        kept = [user for user in users if user.login != login]
        if len(kept) == len(users):
            return False
        self._save(kept)
        return True

    def verify(self, login: str, password: str) -> User | None:
        """The user when the password is theirs, else None. An unknown login costs as much time as a wrong
        password, so a login form does not tell which logins exist."""
        user = self.get(login)
        if user is None or user.password_hash is None:
            _spend_a_verification(password)
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def _save(self, users: list[User]) -> None:
        text = "# callqa workbench users: edit with `callqa user add|list|remove`\n"
        text += yaml.safe_dump(_UsersFile(users=sorted(users, key=lambda u: u.login)).model_dump(mode="json"),
                               allow_unicode=True, sort_keys=False)
        write_text_atomic(self.path, text)
        os.chmod(self.path, 0o600)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def _spend_a_verification(password: str) -> None:
    try:
        _hasher.verify(_dummy_hash(), password)
    except VerificationError:
        pass

"""Who is calling: devices and operators by bearer token, people by dashboard login.

The tokens file holds only SHA-256 hashes of tokens (`sha256:<hex>`) and werkzeug password
hashes, so a copy of it grants nothing. A presented token is hashed and its digest looked up
in a dict, so the check costs the same for 5 devices or 50,000. The lookup's timing can
only tell an attacker about the digest of a token they already chose, never about a stored
token (finding a token whose digest shares a prefix with a stored one is a preimage
search), which is why hashing first makes a plain lookup as safe as comparing in constant
time. The file is re-read when it changes (and gunicorn's SIGHUP starts fresh workers that
read it), so tokens rotate without a restart.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, cast

import flask_login
from flask import g, request
from werkzeug.security import check_password_hash, generate_password_hash

from beam_receiver.config import ConfigError, Problem, read_toml
from beam_receiver.errors import ApiError
from beam_receiver.state import get_state

TOKEN_HASH_PATTERN = re.compile(r"sha256:([0-9a-fA-F]{64})")
SECTIONS = ("devices", "operators", "users")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Credentials:
    """The parsed tokens file: device and operator token hashes, dashboard password hashes."""

    devices: dict[str, str] = field(default_factory=dict)  # device_id -> hex digest
    operators: dict[str, str] = field(default_factory=dict)  # name -> hex digest
    users: dict[str, str] = field(default_factory=dict)  # username -> werkzeug hash

    @functools.cached_property
    def callers(self) -> dict[str, Caller]:
        """Token digest -> caller, built once per file read; a device wins a shared hash."""
        index = {digest: Caller("operator", name) for name, digest in self.operators.items()}
        index.update({digest: Caller("device", name) for name, digest in self.devices.items()})
        return index


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: kind is "device", "operator" or "user" (dashboard session)."""

    kind: str
    name: str


def hash_token(token: str) -> str:
    """What the tokens file stores for a token: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    """What the tokens file's [users] table stores for a password (werkzeug's scrypt)."""
    return generate_password_hash(password)


def parse_credentials(data: dict[str, Any], path: Path) -> Credentials:
    problems: list[Problem] = []
    for key in sorted(set(data) - set(SECTIONS)):
        problems.append(Problem(key, "unknown table (known: devices, operators, users)"))
    tables: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    for section in SECTIONS:
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            problems.append(Problem(section, "must be a table of name = hash"))
            continue
        for name, value in entries.items():
            where = f"{section}.{name}"
            if not name.strip():
                problems.append(Problem(where, "the name must not be empty"))
            elif not isinstance(value, str):
                problems.append(Problem(where, "must be a string"))
            elif section == "users":
                if "$" not in value:
                    problems.append(
                        Problem(where, "must be a hash from `beam-receiver hash-password`")
                    )
                else:
                    tables[section][name] = value
            else:
                match = TOKEN_HASH_PATTERN.fullmatch(value)
                if match is None:
                    problems.append(
                        Problem(
                            where, "must be sha256:<64 hex digits> (`beam-receiver hash-token`)"
                        )
                    )
                else:
                    tables[section][name] = match.group(1).lower()
    if problems:
        raise ConfigError(path, problems)
    return Credentials(
        devices=tables["devices"], operators=tables["operators"], users=tables["users"]
    )


def load_credentials(path: Path) -> Credentials:
    """Read the tokens file; raises ConfigError naming each bad key and the file."""
    return parse_credentials(read_toml(path), path)


def identify_token(credentials: Credentials, token: str) -> Optional[Caller]:
    """The device or operator whose stored hash is this token's (see the module docstring)."""
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return credentials.callers.get(digest)


def bearer_token() -> Optional[str]:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate_token() -> Optional[Caller]:
    """The caller named by the bearer token; 401 for a token the tokens file does not hold."""
    token = bearer_token()
    if token is None:
        return None
    caller = identify_token(get_state().credentials.current(), token)
    if caller is None:
        raise _unauthorized("The bearer token is not in the receiver's tokens file.")
    return caller


def require_device(view: F) -> F:
    """The view is for devices writing as themselves; sets g.caller."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        caller = authenticate_token()
        if caller is None:
            raise _unauthorized("Send the device token as `Authorization: Bearer <token>`.")
        if caller.kind != "device":
            raise ApiError(
                403, "forbidden", f"{caller.kind} {caller.name!r} may read but not write."
            )
        claimed = request.headers.get("X-Beam-Device")
        if claimed is not None and claimed != caller.name:
            raise ApiError(
                403,
                "forbidden",
                f"This token belongs to {caller.name!r}, not {claimed[:128]!r}.",
                [{"field": "X-Beam-Device", "message": "does not match the token"}],
            )
        g.caller = caller
        return view(*args, **kwargs)

    return cast(F, wrapper)


def require_operator(view: F) -> F:
    """The view is for operators: an operator token, or a logged-in dashboard session."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        caller = authenticate_token()
        if caller is None:
            user = flask_login.current_user
            if not user.is_authenticated:
                raise _unauthorized(
                    "Send an operator token as `Authorization: Bearer <token>`,"
                    " or log in to the dashboard."
                )
            caller = Caller("user", str(user.name))
        elif caller.kind != "operator":
            raise ApiError(
                403, "forbidden", f"Device {caller.name!r} may write its own data but not read."
            )
        g.caller = caller
        return view(*args, **kwargs)

    return cast(F, wrapper)


# -- dashboard users -------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """Checked against when the username is unknown, so both cases take as long."""
    return generate_password_hash("beam-receiver-decoy-password")


def check_user(username: str, password: str) -> bool:
    """True when the [users] table holds username and the password matches its hash."""
    stored = get_state().credentials.current().users.get(username)
    if stored is None:
        check_password_hash(_decoy_hash(), password)
        return False
    try:
        return check_password_hash(stored, password)
    except (ValueError, TypeError):  # a hash werkzeug cannot read: no login, not a 500
        return False


def password_fingerprint(username: str) -> Optional[str]:
    """A digest of the user's current password hash (None once the user is removed).

    A login remembers it, so a new password in the tokens file ends the user's logins; the
    digest, not the hash itself, goes to the database.
    """
    stored = get_state().credentials.current().users.get(username)
    if stored is None:
        return None
    return hashlib.sha256(stored.encode("utf-8")).hexdigest()

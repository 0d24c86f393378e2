"""A real `beam-receiver serve` (gunicorn) on a loopback port: its files (tokens file,
expected nodes, receiver.toml), the process, its API over HTTP and what it stored."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import requests
from werkzeug.security import generate_password_hash

from beam_receiver.auth import hash_token

from tests.support.constants import (
    DEVICE,
    DEVICE_TOKEN,
    OPERATOR,
    OPERATOR_TOKEN,
    PASSWORD,
    USER,
)
from tests.support.dashboard import csrf_token
from tests.support.files import toml_lines, toml_value, write_private
from tests.support.processes import ChildProcess, program
from tests.support.waiting import free_port, wait_for


def cheap_password_hash(password: str) -> str:
    """A werkzeug hash that is quick to check (tests log in often); the receiver takes it."""
    return generate_password_hash(password, "pbkdf2:sha256:1000")


def write_tokens_file(
    path: Path,
    devices: Mapping[str, str],
    operators: Optional[Mapping[str, str]] = None,
    users: Optional[Mapping[str, str]] = None,
    password_hash: Callable[[str], str] = cheap_password_hash,
) -> Path:
    """A tokens file as the Ansible role writes it: hashes only, mode 0600."""
    lines = ["[devices]"]
    lines += [f"{toml_value(name)} = {toml_value(hash_token(t))}" for name, t in devices.items()]
    lines.append("[operators]")
    lines += [
        f"{toml_value(name)} = {toml_value(hash_token(t))}" for name, t in (operators or {}).items()
    ]
    lines.append("[users]")
    lines += [
        f"{toml_value(name)} = {toml_value(password_hash(password))}"
        for name, password in (users or {}).items()
    ]
    return write_private(path, "\n".join(lines) + "\n")


def write_receiver_toml(directory: Path, **settings: Any) -> Path:
    """receiver.toml in directory; database, tokens file and expected nodes default to files
    beside it (receiver.db, receiver-tokens.toml, expected-nodes.toml). None leaves a key out."""
    values: dict[str, Any] = {
        "database": str(directory / "receiver.db"),
        "tokens_file": str(directory / "receiver-tokens.toml"),
        "expected_nodes_file": str(directory / "expected-nodes.toml"),
        "telemetry_interval_s": 30,
    }
    values.update(settings)
    path = directory / "receiver.toml"
    path.write_text("\n".join(toml_lines(values)) + "\n")
    return path


def agent_nodes(*names: str) -> str:
    """An expected-nodes file's TOML: these nodes, each with the role "agent"."""
    return "".join(f'[nodes.{toml_value(name)}]\nrole = "agent"\n' for name in names)


class ReceiverProcess(ChildProcess):
    """`beam-receiver serve --config DIRECTORY/receiver.toml` listening on 127.0.0.1:port,
    started and killed at will (`start`, `kill`, `stop`; `with` starts it and stops it at the
    end); its output is appended to
    receiver.log beside the config (or goes to the console). `prefix` goes before the
    command (e.g. taskset)."""

    def __init__(
        self,
        directory: Path,
        port: int,
        *,
        operator_token: str = OPERATOR_TOKEN,
        prefix: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        to_console: bool = False,
    ) -> None:
        super().__init__(None if to_console else directory / "receiver.log", env)
        self.directory = directory
        self.port = port
        self.operator_token = operator_token
        self.prefix = list(prefix)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / "receiver.toml"

    @property
    def database(self) -> Path:
        return self.directory / "receiver.db"

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until it answers /healthz (stopped again if it never does)."""
        self.spawn([*self.prefix, *program("beam-receiver"), "serve", "--config", str(self.config)])
        try:
            wait_for(self.healthy, timeout, f"the receiver to answer /healthz (see {self.log})")
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> ReceiverProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def healthy(self) -> bool:
        """Whether /healthz answers 200; fails at once if the receiver has exited."""
        if not self.running:
            code = self.process.returncode if self.process else None
            raise AssertionError(f"beam-receiver serve exited with {code}:\n{self.log_tail()}")
        try:
            return requests.get(self.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or a worker still starting
            return False

    def request(
        self, method: str, path: str, token: Optional[str] = None, **kwargs: Any
    ) -> requests.Response:
        """One request with `token` as the Bearer token (none: no Authorization header)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def post(
        self, path: str, body: Any, token: str = DEVICE_TOKEN, **headers: str
    ) -> requests.Response:
        return self.request("POST", path, token, json=body, headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        """The operator's GET: asserts 200 and returns the JSON answer."""
        response = self.request("GET", path, self.operator_token, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def readings(self, device_id: str = DEVICE) -> list[dict[str, Any]]:
        """Every stored reading of a device, in stored order (GET /api/readings pages)."""
        readings: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"device_id": device_id, "limit": 1000}
            if cursor:
                params["after"] = cursor
            page = self.get("/api/readings", **params)
            readings += page["readings"]
            cursor = page["next"]
            if not cursor:
                return readings

    def dashboard(self, username: str = USER, password: str = PASSWORD) -> requests.Session:
        """A logged-in dashboard session (the login form's CSRF token included)."""
        session = requests.Session()
        form = session.get(self.url + "/login", timeout=30).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
        assert token, "the login page has no CSRF token"
        response = session.post(
            self.url + "/login",
            data={"csrf_token": token.group(1), "username": username, "password": password},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 302, f"dashboard login failed: {response.status_code}"
        return session

    def log_out(self, session: requests.Session) -> requests.Response:
        """POST the fleet page's logout form, with its CSRF token, from a dashboard session."""
        page = session.get(self.url + "/", timeout=30)
        assert page.status_code == 200, f"not logged in: {page.status_code}"
        return session.post(
            self.url + "/logout",
            data={"csrf_token": csrf_token(page.text)},
            timeout=30,
            allow_redirects=False,
        )


def configure_receiver(
    directory: Path,
    *,
    port: Optional[int] = None,
    devices: Optional[Mapping[str, str]] = None,
    operators: Optional[Mapping[str, str]] = None,
    users: Optional[Mapping[str, str]] = None,
    expected_nodes: Optional[str] = None,
    password_hash: Callable[[str], str] = cheap_password_hash,
    prefix: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
    to_console: bool = False,
    **settings: Any,
) -> ReceiverProcess:
    """Write a receiver's files into directory and return it, not started yet.

    Devices, operators and dashboard users (name -> token or password) default to DEVICE,
    the operator and the dashboard user of tests.support.constants; `expected_nodes` is the
    expected-nodes file's TOML (none: no such file); the port is a free one unless given;
    `settings` are more receiver.toml keys (workers, telemetry_interval_s ...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    operators = {OPERATOR: OPERATOR_TOKEN} if operators is None else operators
    write_tokens_file(
        directory / "receiver-tokens.toml",
        {DEVICE: DEVICE_TOKEN} if devices is None else devices,
        operators,
        {USER: PASSWORD} if users is None else users,
        password_hash,
    )
    if expected_nodes is not None:
        (directory / "expected-nodes.toml").write_text(expected_nodes)
    else:
        settings.setdefault("expected_nodes_file", None)
    write_receiver_toml(directory, listen=f"127.0.0.1:{port}", **settings)
    return ReceiverProcess(
        directory,
        port,
        operator_token=next(iter(operators.values()), OPERATOR_TOKEN),  # for `get`
        prefix=prefix,
        env=env,
        to_console=to_console,
    )


def stored_count(database: Path) -> int:
    """How many readings a receiver's database holds (read-only: the receiver may run)."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        return int(connection.execute("SELECT count(*) FROM readings").fetchone()[0])


@contextlib.contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another process's write transaction held open on a receiver's database: the
    receiver's writes wait for it, then fail after busy_timeout_ms."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")

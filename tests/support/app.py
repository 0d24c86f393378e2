"""The receiver in this process: the app from create_app on real files (tokens, expected
nodes, receiver.toml) and a real database (a SQLite file, or a PostgreSQL database when
`database` is a URL) behind Flask's test client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import flask_login
from flask import Flask, session
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from beam_receiver.app import create_app
from beam_receiver.auth import check_user
from beam_receiver.config import load_config
from beam_receiver.logins import start_login
from beam_receiver.state import ReceiverState, get_state
from beam_receiver.storage import Database

from tests.support.constants import (
    DEVICE,
    OPERATOR,
    OPERATOR_TOKEN,
    OTHER_DEVICE,
    PASSWORD,
    TOKENS,
    USER,
)
from tests.support.receiver import write_lock_held, write_receiver_toml, write_tokens_file

TABLES = (
    "readings",
    "sensors",
    "nodes",
    "telemetry_events",
    "dashboard_logins",
    "login_failures",
    "health_probe",
)
EXPECTED_NODES = (
    '[nodes."beamrider-0001"]\nrole = "agent"\ntags = { site = "lab" }\n'
    '[nodes."beamrider-0003"]\nrole = "agent"\n'
)


@dataclass
class Receiver:
    """One app under test with its client, files and tokens."""

    app: Flask
    client: FlaskClient
    directory: Path
    tokens_file: Path
    tokens: dict[str, str] = field(default_factory=lambda: dict(TOKENS))

    def headers(self, name: str = DEVICE, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}", **extra}

    def operator(self) -> dict[str, str]:
        return self.headers(OPERATOR)

    def post_readings(
        self, body: Any, name: str = DEVICE, headers: Optional[dict[str, str]] = None
    ) -> TestResponse:
        return self.client.post("/api/readings", json=body, headers=headers or self.headers(name))

    def get(self, path: str, **params: Any) -> TestResponse:
        return self.client.get(path, query_string=params, headers=self.operator())

    @property
    def state(self) -> ReceiverState:
        with self.app.app_context():
            return get_state()

    def stored(self) -> int:
        """How many readings the database holds, whichever backend."""
        return self.state.database.count_readings()

    @contextlib.contextmanager
    def write_lock_held(self) -> Iterator[None]:
        """Another process's write transaction held open on this receiver's database: its
        writes wait for it, then fail after busy_timeout_ms (SQLite: BEGIN IMMEDIATE;
        PostgreSQL: every table locked against writers, reads still served)."""
        database = self.state.database
        if isinstance(database, Database):
            with write_lock_held(database.path):
                yield
            return
        from beam_receiver.storage.postgres import PostgresStorage

        assert isinstance(database, PostgresStorage)
        with database.connect() as blocker, blocker.transaction():
            blocker.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
            yield

    def login(self, username: str = USER, password: str = PASSWORD) -> None:
        """Log the client in the way the dashboard's login view does (the login recorded by
        logins.start_login, then flask_login.login_user), without the form and its throttle."""
        with self.app.test_request_context():
            assert check_user(username, password)
            user = start_login(username)
            assert user is not None
            flask_login.login_user(user)
            saved = dict(session)
        with self.client.session_transaction() as client_session:
            client_session.update(saved)


def build_receiver(
    directory: Path, expected_nodes: str = EXPECTED_NODES, **settings: Any
) -> Receiver:
    """An app on files in directory (created): both devices, the operator and the dashboard
    user; `settings` are more receiver.toml keys."""
    directory.mkdir()
    tokens_file = write_tokens_file(
        directory / "receiver-tokens.toml",
        {DEVICE: TOKENS[DEVICE], OTHER_DEVICE: TOKENS[OTHER_DEVICE]},
        {OPERATOR: OPERATOR_TOKEN},
        {USER: PASSWORD},
    )
    (directory / "expected-nodes.toml").write_text(expected_nodes)
    app = create_app(load_config(write_receiver_toml(directory, **settings)))
    app.config["TESTING"] = True
    return Receiver(app, app.test_client(), directory, tokens_file)

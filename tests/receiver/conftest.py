"""Fixtures for the receiver: real config files, a real SQLite file, Flask's test client.

`receiver` is a ready app with two devices, an operator and a dashboard user;
`make_receiver(**config)` builds one with other receiver.toml settings;
`make_reading(seq, **fields)` makes a valid reading of beamrider-0001.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import flask_login
import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from beam_receiver.app import create_app
from beam_receiver.auth import check_user, hash_token, load_dashboard_user
from beam_receiver.config import load_config
from beam_receiver.state import ReceiverState, get_state

DEVICE = "beamrider-0001"
OTHER_DEVICE = "beamrider-0002"
TOKENS = {
    DEVICE: "device-token-0001",
    OTHER_DEVICE: "device-token-0002",
    "ops": "operator-token-ops",
}
USER, PASSWORD = "admin", "correct horse battery staple"


def write_tokens_file(
    path: Path,
    devices: dict[str, str],
    operators: dict[str, str],
    users: Optional[dict[str, str]] = None,
) -> Path:
    """A tokens file as the Ansible role writes it: hashes only (cheap hashes for tests)."""
    lines = ["[devices]"]
    lines += [f'"{name}" = "{hash_token(token)}"' for name, token in devices.items()]
    lines.append("[operators]")
    lines += [f'"{name}" = "{hash_token(token)}"' for name, token in operators.items()]
    lines.append("[users]")
    for name, password in (users or {}).items():
        lines.append(f'"{name}" = "{generate_password_hash(password, "pbkdf2:sha256:1000")}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def write_receiver_toml(directory: Path, **settings: Any) -> Path:
    """receiver.toml in directory; database and tokens file default to files beside it."""
    values: dict[str, Any] = {
        "database": str(directory / "receiver.db"),
        "tokens_file": str(directory / "receiver-tokens.toml"),
        "expected_nodes_file": str(directory / "expected-nodes.toml"),
        "telemetry_interval_s": 30,
    }
    values.update(settings)
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f'{key} = "{value}"')
    path = directory / "receiver.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


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
        return self.headers("ops")

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
        return self.state.database.count_readings()

    def login(self, username: str = USER, password: str = PASSWORD) -> None:
        """Log the client in the way the dashboard's login view does (flask_login.login_user)."""
        with self.app.test_request_context():
            assert check_user(username, password)
            user = load_dashboard_user(username)
            assert user is not None
            flask_login.login_user(user)
            saved = dict(session)
        with self.client.session_transaction() as client_session:
            client_session.update(saved)


@pytest.fixture
def make_receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    built: list[Receiver] = []

    def build(
        expected_nodes: str = '[nodes."beamrider-0001"]\nrole = "agent"\n'
        'tags = { site = "lab" }\n[nodes."beamrider-0003"]\nrole = "agent"\n',
        **settings: Any,
    ) -> Receiver:
        directory = tmp_path / f"receiver-{len(built)}"
        directory.mkdir()
        tokens_file = write_tokens_file(
            directory / "receiver-tokens.toml",
            {DEVICE: TOKENS[DEVICE], OTHER_DEVICE: TOKENS[OTHER_DEVICE]},
            {"ops": TOKENS["ops"]},
            {USER: PASSWORD},
        )
        (directory / "expected-nodes.toml").write_text(expected_nodes)
        app = create_app(load_config(write_receiver_toml(directory, **settings)))
        app.config["TESTING"] = True
        receiver = Receiver(app, app.test_client(), directory, tokens_file)
        built.append(receiver)
        return receiver

    yield build
    for receiver in built:
        receiver.state.database.close()


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
def make_reading() -> Callable[..., dict[str, Any]]:
    def build(seq: int, /, **fields: Any) -> dict[str, Any]:
        reading: dict[str, Any] = {
            "device_id": DEVICE,
            "sensor": "geiger",
            "sensor_type": "mightyohm",
            "payload": {"cps": 1, "cpm": 38, "usv_per_hr": 0.21, "mode": "SLOW"},
            "timestamp": "2026-02-15T19:06:00.123Z",
            "seq": seq,
        }
        reading.update(fields)
        return reading

    return build


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        found = set(label_text.rstrip("}").split(",")) if label_text else set()
        if metric == name and wanted <= found:
            return float(value)
    return 0.0

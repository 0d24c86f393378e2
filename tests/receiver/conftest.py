"""Fixtures for the receiver: real config files, a real database, Flask's test client.

`receiver` is a ready app with two devices, an operator and a dashboard user;
`make_receiver(**config)` builds one with other receiver.toml settings;
`make_reading(seq, **fields)` makes a valid reading of beamrider-0001.
The helpers behind them live in tests.support (app, readings, receiver, postgres).

Every test that builds a receiver runs twice: on SQLite (a file in the test's directory)
and on PostgreSQL (a fresh database, copied from a migrated template, on one server the
session starts: tests.support.postgres). A test about SQLite itself (its files, its locks,
its query plans) is marked `sqlite_only`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.app import Receiver, build_receiver
from tests.support.readings import valid_reading

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`backend` is each storage backend, unless the test is marked sqlite_only (or names
    its backends itself with @pytest.mark.parametrize("backend", [...]))."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", BACKENDS[:1] if only_sqlite else BACKENDS)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    from tests.support.postgres import running_postgres

    with running_postgres() as server:
        yield server


@pytest.fixture
def database_settings(
    backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[Path], dict[str, Any]]]:
    """receiver.toml keys that put a receiver in `directory` on this test's backend: none
    for SQLite (the file beside receiver.toml), a fresh PostgreSQL database otherwise."""
    created: list[str] = []
    server = request.getfixturevalue("postgres_server") if backend == "postgres" else None

    def settings(directory: Path) -> dict[str, Any]:
        if server is None:
            return {}
        name = server.create_database()
        created.append(name)
        return {
            "database": server.url(name),
            "database_password_file": str(server.password_file),
            "secret_key_file": str(directory / "receiver.db.secret-key"),
        }

    yield settings
    for name in created:
        assert server is not None
        server.drop_database(name)


@pytest.fixture
def make_receiver(
    tmp_path: Path, database_settings: Callable[[Path], dict[str, Any]]
) -> Iterator[Callable[..., Receiver]]:
    built: list[Receiver] = []

    def build(**settings: Any) -> Receiver:
        directory = tmp_path / f"receiver-{len(built)}"
        receiver = build_receiver(directory, **{**database_settings(directory), **settings})
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
    return valid_reading

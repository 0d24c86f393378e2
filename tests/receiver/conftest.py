"""Fixtures for the receiver: real config files, a real SQLite file, Flask's test client.

`receiver` is a ready app with two devices, an operator and a dashboard user;
`make_receiver(**config)` builds one with other receiver.toml settings;
`make_reading(seq, **fields)` makes a valid reading of beamrider-0001.
The helpers behind them live in tests.support (app, readings, receiver).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.app import Receiver, build_receiver
from tests.support.readings import valid_reading


@pytest.fixture
def make_receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    built: list[Receiver] = []

    def build(**settings: Any) -> Receiver:
        receiver = build_receiver(tmp_path / f"receiver-{len(built)}", **settings)
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

"""What one app holds: config, database, credentials, expected nodes, metrics, write probe.

Kept on `app.extensions["beam_receiver"]` so that several apps (the tests make many) never
share anything through module globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from flask import current_app

from beam_receiver.config import ReceiverConfig
from beam_receiver.health_probe import WriteProbe
from beam_receiver.inventory import ExpectedNode
from beam_receiver.reloading import ReloadingFile
from beam_receiver.storage import Storage

if TYPE_CHECKING:
    from beam_receiver.auth import Credentials
    from beam_receiver.metrics import ReceiverMetrics

EXTENSION_KEY = "beam_receiver"


@dataclass
class ReceiverState:
    config: ReceiverConfig
    database: Storage
    credentials: ReloadingFile[Credentials]
    expected_nodes: Optional[ReloadingFile[dict[str, ExpectedNode]]]
    metrics: ReceiverMetrics
    write_probe: WriteProbe


def get_state() -> ReceiverState:
    """The current app's state (inside a request or an app context)."""
    state: ReceiverState = current_app.extensions[EXTENSION_KEY]
    return state

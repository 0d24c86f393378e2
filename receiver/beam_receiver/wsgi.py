"""`beam_receiver.wsgi:app` for any WSGI server; the config path is BEAM_RECEIVER_CONFIG.

BEAM_RECEIVER_CONFIG=/etc/beam/receiver.toml gunicorn beam_receiver.wsgi:app
"""

from __future__ import annotations

import os

from beam_receiver.app import create_app
from beam_receiver.config import load_config
from beam_receiver.requestlog import configure_logging

CONFIG_VARIABLE = "BEAM_RECEIVER_CONFIG"


def _config_path() -> str:
    path = os.environ.get(CONFIG_VARIABLE, "").strip()
    if not path:
        raise RuntimeError(
            f"set {CONFIG_VARIABLE} to the path of receiver.toml before importing"
            " beam_receiver.wsgi"
        )
    return path


configure_logging()
app = create_app(load_config(_config_path()))

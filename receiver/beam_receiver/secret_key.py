"""The session-signing key: read from secret_key_file, created (mode 0600) if missing.

Every gunicorn worker must sign sessions with the same key, and a restart must not log
everyone out, so the key lives in a file. Creation is atomic (write a private temporary
file, then hard-link it into place) so workers starting together agree on one key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

MIN_KEY_LENGTH = 32


class SecretKeyError(RuntimeError):
    """The key file exists but cannot be used."""


def load_or_create_secret_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another worker won: use its key
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"{path}: cannot read the session key: {exc}") from exc
    if len(key) < MIN_KEY_LENGTH:
        raise SecretKeyError(
            f"{path}: the session key is shorter than {MIN_KEY_LENGTH} characters;"
            " delete the file to have a new one generated"
        )
    return key

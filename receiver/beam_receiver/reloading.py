"""A file that is re-read when it changes: the tokens file and the expected-node list.

Ansible rewrites these files while the receiver runs. Each request asks for the current
contents; a cheap stat() notices a new mtime, size or inode and the file is parsed again. A
file that turns out broken is logged and the last good contents stay in force, so a bad
deploy never locks every device out.

The last good parse of each path is also remembered process-wide: gunicorn's master parses
the files at start and on SIGHUP, and the workers it forks afterwards start from that parse
if the file has meanwhile been broken, instead of failing to boot and halting the server.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")
Signature = tuple[int, int, int]

log = logging.getLogger("beam_receiver.reloading")
_last_good: dict[Path, object] = {}


def file_signature(path: Path) -> Optional[Signature]:
    """What changes when the file is rewritten: mtime, size and inode (None when missing)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def parse_and_remember(path: Path, parse: Callable[[Path], T]) -> T:
    """Parse the file and keep the result as this process's last good contents of it."""
    value = parse(path)
    _last_good[path] = value
    return value


class ReloadingFile(Generic[T]):
    """The parsed contents of one file, re-parsed when its signature changes or on reload()."""

    def __init__(self, path: Path, parse: Callable[[Path], T]) -> None:
        self.path = path
        self._parse = parse
        self._lock = threading.Lock()
        self._signature = file_signature(path)
        try:
            self._value = parse_and_remember(path, parse)
        except Exception as exc:
            if path not in _last_good:
                raise  # broken from the start: the caller reports it
            log.error(
                "starting with the last good contents of %s: %s",
                path,
                exc,
                extra={"event": "reload_failed", "file": str(path)},
            )
            self._value = _last_good[path]  # type: ignore[assignment]

    def current(self) -> T:
        """The contents, re-read first if the file changed since it was last read."""
        if file_signature(self.path) != self._signature:
            self.reload()
        return self._value

    def reload(self) -> bool:
        """Parse the file again; keep the last good contents if it is now broken."""
        with self._lock:
            signature = file_signature(self.path)
            try:
                value = parse_and_remember(self.path, self._parse)
            except Exception as exc:  # any parse failure: keep serving with what we had
                if signature != self._signature:
                    log.error(
                        "keeping the previous contents of %s: %s",
                        self.path,
                        exc,
                        extra={"event": "reload_failed", "file": str(self.path)},
                    )
                self._signature = signature
                return False
            self._value = value
            self._signature = signature
            log.info("re-read %s", self.path, extra={"event": "reloaded", "file": str(self.path)})
            return True

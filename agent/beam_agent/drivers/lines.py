"""Line-oriented byte streams (serial ports, TCP sockets): bounded splitting, skip counting."""

from __future__ import annotations

import logging
from typing import Callable, Optional


class LineSplitter:
    """Cuts a byte stream into lines, with a bound so that a peer that never ends a line
    costs at most `max_line_bytes` of memory.

    CR, LF and CRLF all end a line; blank lines are not returned. A line longer than the
    bound is dropped whole and reported to `on_overlong`. With `skip_first`, the bytes before
    the first line end are thrown away: a port opened mid-line would otherwise hand the parser
    the tail of a line, which a loose pattern could accept as a wrong value.
    """

    def __init__(
        self,
        max_line_bytes: int,
        *,
        skip_first: bool = False,
        on_overlong: Optional[Callable[[], None]] = None,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.on_overlong = on_overlong
        self.pending = bytearray()
        self.discarding = skip_first  # drop bytes up to the next line end

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the lines they completed, without line ends."""
        parts = data.replace(b"\r", b"\n").split(b"\n")
        lines = [line for line in map(self._end_line, parts[:-1]) if line]
        self._append(parts[-1])
        return lines

    def _append(self, part: bytes) -> None:
        if self.discarding:
            return
        if len(self.pending) + len(part) > self.max_line_bytes:
            self.pending.clear()
            self.discarding = True
            if self.on_overlong is not None:
                self.on_overlong()
            return
        self.pending += part

    def _end_line(self, part: bytes) -> Optional[bytes]:
        self._append(part)
        if self.discarding:
            self.discarding = False
            return None
        line = bytes(self.pending)
        self.pending.clear()
        return line if line.strip() else None


class SkipCounter:
    """Counts input that had to be skipped, logging the first and then every hundredth so a
    noisy source stays visible without flooding the journal."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.count = 0

    def __call__(self, source: str, reason: str) -> None:
        self.count += 1
        if self.count == 1 or self.count % 100 == 0:
            self.log.warning("%s: skipped %s (%d skipped so far)", source, reason, self.count)

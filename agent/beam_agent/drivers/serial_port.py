"""What every line-oriented serial sensor shares: open, frame lines, read, notice a lost device.

A serial driver subclasses `SerialDriver` and implements only `parse_line`. Reconnecting is
the scheduler's job: when the device disappears, `stream` raises `DriverError` and is called
again after a back-off, which opens the port afresh once the device is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

import serial

from beam_agent.drivers.base import Driver, DriverError, Emit, Option
from beam_agent.reading import Sample

# How long one read may block: `stream` notices `stop` at least this often.
POLL_INTERVAL_S = 0.5

SERIAL_OPTIONS: tuple[Option, ...] = (
    Option(
        "port",
        str,
        help="serial device, e.g. /dev/ttyUSB0 (a stable /dev/serial/by-id "
        "path survives re-plugging)",
    ),
    Option(
        "baudrate", int, 9600, help="line speed in bits per second", minimum=50, maximum=4_000_000
    ),
    Option(
        "timeout_s",
        float,
        10.0,
        help="read-once waits this long for a parseable line",
        minimum=0.01,
        maximum=3600,
    ),
    Option(
        "max_line_bytes",
        int,
        4096,
        help="longer lines are dropped (garbage or a wrong baud rate never ends a line)",
        minimum=16,
        maximum=1_048_576,
    ),
)


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


def open_serial(port: str, baudrate: int) -> Any:
    """Open `port` in raw mode with a short read timeout, or raise DriverError saying why."""
    try:
        return serial.Serial(port=port, baudrate=baudrate, timeout=POLL_INTERVAL_S)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DriverError(f"cannot open serial port {port}: {exc}") from exc


def read_chunk(connection: Any, port: str) -> bytes:
    """Whatever arrived within one poll interval (b'' if nothing); DriverError if the device
    is gone: pyserial reports an unplugged adapter or a hung-up pty as an error on read."""
    try:
        data: bytes = connection.read(1)
        if data:
            waiting = connection.in_waiting
            if waiting:
                data += connection.read(waiting)
        return data
    except (serial.SerialException, OSError) as exc:
        raise DriverError(f"serial port {port} disconnected: {exc}") from exc


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


class SerialDriver(Driver):
    """A streaming driver for a device that writes one measurement per text line."""

    options = SERIAL_OPTIONS
    streaming = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.port: str = self.config["port"]
        self.baudrate: int = self.config["baudrate"]
        self.timeout_s: float = self.config["timeout_s"]
        self.max_line_bytes: int = self.config["max_line_bytes"]
        self.skip = SkipCounter(logging.getLogger(f"beam_agent.drivers.{self.type_name}"))

    @property
    def skipped(self) -> int:
        """Lines dropped so far: unparseable or longer than `max_line_bytes`."""
        return self.skip.count

    def parse_line(self, line: str) -> Sample:
        """Turn one line (stripped, without its line end) into a sample; ValueError if the
        line does not fit, with a message saying what is wrong."""
        raise NotImplementedError

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        connection = open_serial(self.port, self.baudrate)
        try:
            splitter = self._splitter()
            while not stop.is_set():
                for raw in splitter.feed(read_chunk(connection, self.port)):
                    sample = self._parse(raw)
                    if sample is not None:
                        emit(sample)
        finally:
            connection.close()

    def read(self) -> list[Sample]:
        connection = open_serial(self.port, self.baudrate)
        try:
            splitter = self._splitter()
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                for raw in splitter.feed(read_chunk(connection, self.port)):
                    sample = self._parse(raw)
                    if sample is not None:
                        return [sample]
        finally:
            connection.close()
        raise DriverError(f"no parseable line from {self.port} within {self.timeout_s:g} s")

    def _splitter(self) -> LineSplitter:
        def overlong() -> None:
            self.skip(self.port, f"a line longer than {self.max_line_bytes} bytes")

        return LineSplitter(self.max_line_bytes, skip_first=True, on_overlong=overlong)

    def _parse(self, raw: bytes) -> Optional[Sample]:
        line = raw.decode("utf-8", errors="replace").strip()
        try:
            return self.parse_line(line)
        except ValueError as exc:
            self.skip(self.port, f"unparseable line {line[:200]!r}: {exc}")
            return None

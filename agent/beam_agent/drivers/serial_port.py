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
from typing import Any, Optional

import serial

from beam_agent.drivers.base import Driver, DriverError, Emit, Option
from beam_agent.drivers.lines import LineSplitter, SkipCounter
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

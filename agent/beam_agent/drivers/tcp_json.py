"""A TCP endpoint that sends one JSON object per line, e.g. a microcontroller on Wi-Fi or a
local daemon: each object becomes the payload of one sample."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any, Optional

from beam_agent.drivers.base import Driver, DriverError, Emit, Option, OptionError
from beam_agent.drivers.lines import LineSplitter, SkipCounter
from beam_agent.drivers.serial_port import POLL_INTERVAL_S
from beam_agent.reading import Sample


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_object(line: bytes) -> dict[str, Any]:
    """One line as a JSON object; ValueError for invalid JSON, NaN/Infinity or a non-object."""
    value = json.loads(line, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    return value


class TcpJsonDriver(Driver):
    type_name = "tcp_json"
    description = (
        "Newline-delimited JSON objects from a TCP endpoint, one reading per object; "
        "reconnects when the connection drops."
    )
    streaming = True
    options = (
        Option("host", str, help="host name or address to connect to"),
        Option("port", int, help="TCP port", minimum=1, maximum=65535),
        Option(
            "connect_timeout_s",
            float,
            5.0,
            help="give up connecting after this long",
            minimum=0.01,
            maximum=600,
        ),
        Option(
            "timeout_s",
            float,
            10.0,
            help="read-once waits this long for an object",
            minimum=0.01,
            maximum=3600,
        ),
        Option(
            "max_line_bytes",
            int,
            65536,
            help="longer lines are dropped, the connection stays up",
            minimum=16,
            maximum=16_777_216,
        ),
    )

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        options = super().validate_options(raw)
        if not options["host"].strip():
            raise OptionError("host", "must not be empty")
        return options

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.host: str = self.config["host"]
        self.port: int = self.config["port"]
        self.connect_timeout_s: float = self.config["connect_timeout_s"]
        self.timeout_s: float = self.config["timeout_s"]
        self.max_line_bytes: int = self.config["max_line_bytes"]
        self.endpoint = f"{self.host}:{self.port}"
        self.skip = SkipCounter(logging.getLogger(f"beam_agent.drivers.{self.type_name}"))

    @property
    def skipped(self) -> int:
        """Lines dropped so far: invalid JSON, not an object, or longer than max_line_bytes."""
        return self.skip.count

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        with self._connect() as connection:
            splitter = self._splitter()
            while not stop.is_set():
                for line in splitter.feed(self._receive(connection)):
                    sample = self._parse(line)
                    if sample is not None:
                        emit(sample)

    def read(self) -> list[Sample]:
        deadline = time.monotonic() + self.timeout_s
        with self._connect() as connection:
            splitter = self._splitter()
            while time.monotonic() < deadline:
                for line in splitter.feed(self._receive(connection)):
                    sample = self._parse(line)
                    if sample is not None:
                        return [sample]
        raise DriverError(f"no JSON object from {self.endpoint} within {self.timeout_s:g} s")

    def _connect(self) -> socket.socket:
        try:
            connection = socket.create_connection(
                (self.host, self.port), timeout=self.connect_timeout_s
            )
        except OSError as exc:
            raise DriverError(f"cannot connect to {self.endpoint}: {exc}") from exc
        connection.settimeout(POLL_INTERVAL_S)  # so that `stream` notices `stop`
        return connection

    def _receive(self, connection: socket.socket) -> bytes:
        """What arrived within one poll interval (b'' if nothing); DriverError once the peer
        has closed the connection or it broke."""
        try:
            data = connection.recv(65536)
        except socket.timeout:
            return b""
        except OSError as exc:
            raise DriverError(f"connection to {self.endpoint} failed: {exc}") from exc
        if not data:
            raise DriverError(f"connection closed by {self.endpoint}")
        return data

    def _splitter(self) -> LineSplitter:
        def overlong() -> None:
            self.skip(self.endpoint, f"a line longer than {self.max_line_bytes} bytes")

        return LineSplitter(self.max_line_bytes, on_overlong=overlong)

    def _parse(self, line: bytes) -> Optional[Sample]:
        try:
            return self.sample(parse_object(line))
        except (ValueError, RecursionError) as exc:  # also bad UTF-8 and absurd nesting
            self.skip(self.endpoint, f"line {line[:200]!r}: {exc}")
            return None

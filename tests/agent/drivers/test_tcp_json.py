from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from beam_agent.drivers import DriverError, OptionError, resolve_driver
from beam_agent.drivers.tcp_json import TcpJsonDriver, parse_object

from tests.support.devices import WAIT_S, StreamRunner
from tests.support.waiting import free_port, wait_for


class JsonLineServer:
    """A real TCP server on 127.0.0.1 that hands every accepted connection to the test."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.connections: queue.Queue[socket.socket] = queue.Queue()
        self.accepted: list[socket.socket] = []
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.accepted.append(connection)
            self.connections.put(connection)

    def next_connection(self) -> socket.socket:
        return self.connections.get(timeout=WAIT_S)

    def close(self) -> None:
        self.closing.set()
        self.thread.join(WAIT_S)
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def server() -> Iterator[JsonLineServer]:
    running = JsonLineServer()
    yield running
    running.close()


def make_driver(port: int, **options: Any) -> TcpJsonDriver:
    return TcpJsonDriver({"host": "127.0.0.1", "port": port, **options})


@pytest.fixture
def runner(server: JsonLineServer) -> Iterator[StreamRunner]:
    stream = StreamRunner(make_driver(server.port))
    yield stream
    stream.close()


# -- options and parsing -------------------------------------------------------------------


def test_is_the_registered_streaming_builtin() -> None:
    assert resolve_driver("tcp_json") is TcpJsonDriver
    assert TcpJsonDriver.streaming and TcpJsonDriver.description
    options = TcpJsonDriver.validate_options({"host": "sensor.local", "port": 7000})
    assert options == {
        "host": "sensor.local",
        "port": 7000,
        "connect_timeout_s": 5.0,
        "timeout_s": 10.0,
        "max_line_bytes": 65536,
    }


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"port": 7000}, "host"),
        ({"host": "h"}, "port"),
        ({"host": "h", "port": 0}, "port"),
        ({"host": "h", "port": 70000}, "port"),
        ({"host": "h", "port": "7000"}, "port"),
        ({"host": " ", "port": 7000}, "host"),
        ({"host": "h", "port": 7000, "connect_timeout_s": -1}, "connect_timeout_s"),
        ({"host": "h", "port": 7000, "max_line_bytes": 1}, "max_line_bytes"),
        ({"host": "h", "port": 7000, "url": "tcp://h"}, "url"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        TcpJsonDriver.validate_options(raw)
    assert caught.value.key == key


@pytest.mark.parametrize(
    "line, problem",
    [
        (b"{not json", "Expecting property name"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"42", "a JSON int, not an object"),
        (b'{"v": NaN}', "NaN is not valid JSON"),
        (b'{"v": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"v": "\xff"}', "utf-8"),
    ],
)
def test_parse_object_rejects_what_is_not_a_json_object(line: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_object(line)


# -- streaming against a real socket server ------------------------------------------------


def test_stream_emits_each_object(server: JsonLineServer, runner: StreamRunner) -> None:
    connection = server.next_connection()
    connection.sendall(b'{"temperature_c": 21.5, "ok": true}\n{"nested": {"a": [1')
    connection.sendall(b', 2]}, "s": "x"}\r\n\n')
    wait_for(lambda: len(runner.samples) == 2, WAIT_S, "both samples")
    assert runner.payloads == [
        {"temperature_c": 21.5, "ok": True},
        {"nested": {"a": [1, 2]}, "s": "x"},
    ]
    assert runner.samples[0].sensor_type == "tcp_json"


def test_bad_lines_are_skipped_and_counted(
    server: JsonLineServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="beam_agent.drivers.tcp_json")
    driver = make_driver(server.port)
    runner = StreamRunner(driver)
    try:
        connection = server.next_connection()
        connection.sendall(b'oops\n[1]\n"s"\n{"v": NaN}\n' + b"[" * 50_000 + b'\n{"v": 1}\n')
        wait_for(lambda: len(runner.samples) == 1, WAIT_S, "the sample")
        assert runner.payloads == [{"v": 1}]
        assert driver.skipped == 5
        assert any(
            f"127.0.0.1:{server.port}: skipped" in record.getMessage() for record in caplog.records
        )
        assert runner.thread.is_alive()
    finally:
        runner.close()


def test_flooding_line_is_dropped_and_the_connection_goes_on(server: JsonLineServer) -> None:
    driver = make_driver(server.port, max_line_bytes=1024)
    runner = StreamRunner(driver)
    try:
        connection = server.next_connection()
        for _ in range(200):  # 2 MB without a line end
            connection.sendall(b"x" * 10_000)
        connection.sendall(b'\n{"after": "flood"}\n')
        wait_for(lambda: len(runner.samples) == 1, WAIT_S, "the sample")
        assert runner.payloads == [{"after": "flood"}]
        assert driver.skipped == 1
        assert runner.error is None and runner.thread.is_alive()
    finally:
        runner.close()


def test_stream_returns_soon_after_stop(server: JsonLineServer, runner: StreamRunner) -> None:
    server.next_connection()
    assert not runner.finished(0.2)
    runner.stop.set()
    assert runner.finished()
    assert runner.error is None


def test_server_dropping_the_connection_raises_driver_error(
    server: JsonLineServer, runner: StreamRunner
) -> None:
    connection = server.next_connection()
    connection.sendall(b'{"n": 1}\n')
    wait_for(lambda: len(runner.samples) == 1, WAIT_S, "the sample")
    connection.close()
    assert runner.finished()
    assert isinstance(runner.error, DriverError)
    assert str(runner.error) == f"connection closed by 127.0.0.1:{server.port}"


def test_reconnects_after_the_server_restarts(server: JsonLineServer) -> None:
    driver = make_driver(server.port)
    port = server.port
    first = StreamRunner(driver)
    server.next_connection().sendall(b'{"n": 1}\n')
    wait_for(lambda: len(first.samples) == 1, WAIT_S, "the first connection's sample")
    server.close()
    assert first.finished() and isinstance(first.error, DriverError)

    refused = StreamRunner(driver)  # what the scheduler's retry meets while it is down
    assert refused.finished()
    assert isinstance(refused.error, DriverError)
    assert f"cannot connect to 127.0.0.1:{port}" in str(refused.error)

    restarted = JsonLineServer(port)
    again = StreamRunner(driver)
    try:
        restarted.next_connection().sendall(b'{"n": 2}\n')
        wait_for(lambda: len(again.samples) == 1, WAIT_S, "the sample after reconnecting")
        assert again.payloads == [{"n": 2}]
    finally:
        again.close()
        restarted.close()


# -- read-once -----------------------------------------------------------------------------


def test_read_returns_the_first_object(server: JsonLineServer) -> None:
    driver = make_driver(server.port)

    def serve() -> None:
        server.next_connection().sendall(b'garbage\n{"first": 1}\n{"second": 2}\n')

    threading.Thread(target=serve, daemon=True).start()
    samples = driver.read()
    assert [sample.payload for sample in samples] == [{"first": 1}]


def test_read_times_out_on_a_silent_server(server: JsonLineServer) -> None:
    driver = make_driver(server.port, timeout_s=0.3)
    with pytest.raises(DriverError, match=r"no JSON object from 127\.0\.0\.1:\d+ within 0.3 s"):
        driver.read()


def test_read_fails_clearly_when_nothing_listens() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(DriverError, match=f"cannot connect to 127.0.0.1:{port}"):
        make_driver(port).read()

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from beam_agent.drivers import DriverError, OptionError, resolve_driver
from beam_agent.drivers.http_json import HttpJsonDriver, redact

from tests.support.waiting import free_port

ROUTES: dict[str, tuple[int, bytes]] = {
    "/current": (200, b'{"temperature_c": 21.5, "station": "roof"}'),
    "/list": (200, b'[{"channel": 1, "w": 230.5}, {"channel": 2, "w": 12}]'),
    "/empty-list": (200, b"[]"),
    "/nested": (200, b'{"data": {"current": {"pm25": 7}}, "items": [{"i": 0}, {"i": 1}]}'),
    "/error": (500, b'{"error": "sensor offline"}'),
    "/missing": (404, b"not here"),
    "/html": (200, b"<html><body>login</body></html>"),
    "/string": (200, b'"just a string"'),
    "/number": (200, b"42"),
    "/mixed-list": (200, b'[{"a": 1}, 2]'),
    "/nan": (200, b'{"v": NaN}'),
    "/unicode": (200, json.dumps({"place": "Zürich ☢"}).encode()),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a kept session reuses its connection
    server: JsonHttpServer

    def do_GET(self) -> None:
        self.server.requests.append(
            {"path": self.path, "headers": dict(self.headers), "client": self.client_address}
        )
        if self.path == "/slow":
            self.server.release.wait(30)
        status, body = ROUTES.get(urlsplit(self.path).path, (200, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class JsonHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start(server: JsonHttpServer) -> Iterator[JsonHttpServer]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def server() -> Iterator[JsonHttpServer]:
    yield from start(JsonHttpServer())


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[JsonHttpServer]:
    """The same server behind TLS with a self-signed certificate made by openssl."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = JsonHttpServer()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from start(server)


def make_driver(url: str, **options: Any) -> HttpJsonDriver:
    return HttpJsonDriver({"url": url, **options})


# -- options -------------------------------------------------------------------------------


def test_is_the_registered_polled_builtin() -> None:
    assert resolve_driver("http_json") is HttpJsonDriver
    assert not HttpJsonDriver.streaming and HttpJsonDriver.description
    options = HttpJsonDriver.validate_options({"url": "https://inverter.local/api/v1/now"})
    assert options == {
        "url": "https://inverter.local/api/v1/now",
        "timeout_s": 10.0,
        "headers": {},
        "field_path": "",
        "verify_tls": True,
    }


@pytest.mark.parametrize(
    "raw, key, problem",
    [
        ({}, "url", "required"),
        ({"url": "ftp://host/file"}, "url", "http:// or https://"),
        ({"url": "inverter.local/api"}, "url", "http:// or https://"),
        ({"url": "http:///path"}, "url", "with a host"),
        ({"url": "http://host:port/"}, "url", "not a valid URL"),
        ({"url": "http://h/", "headers": {"X-Key": 5}}, "headers", "X-Key: must be a string"),
        ({"url": "http://h/", "headers": {"X-Key": "a\r\nHost: evil"}}, "headers", "line breaks"),
        ({"url": "http://h/", "headers": ["X-Key: 1"]}, "headers", "a table"),
        ({"url": "http://h/", "field_path": "data..current"}, "field_path", "empty segment"),
        ({"url": "http://h/", "verify_tls": "no"}, "verify_tls", "a boolean"),
        ({"url": "http://h/", "timeout_s": 0}, "timeout_s", "at least"),
        ({"url": "http://h/", "method": "POST"}, "method", "unknown option"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(OptionError, match=problem) as caught:
        HttpJsonDriver.validate_options(raw)
    assert caught.value.key == key


def test_redact_hides_credentials_and_query() -> None:
    assert redact("https://user:pw@host:8443/api?token=s3cret") == "https://host:8443/api"
    assert redact("http://[::1]:8080/x") == "http://[::1]:8080/x"


# -- against a real HTTP server ------------------------------------------------------------


def test_object_becomes_one_sample_and_headers_are_sent(server: JsonHttpServer) -> None:
    driver = make_driver(f"{server.base}/current", headers={"X-Api-Key": "k1"})
    samples = driver.read()
    assert [s.payload for s in samples] == [{"temperature_c": 21.5, "station": "roof"}]
    assert samples[0].sensor_type == "http_json"
    headers = server.requests[0]["headers"]
    assert headers["X-Api-Key"] == "k1"
    assert headers["User-Agent"].startswith("beam-agent/")


def test_list_of_objects_becomes_one_sample_each(server: JsonHttpServer) -> None:
    samples = make_driver(f"{server.base}/list").read()
    assert [s.payload for s in samples] == [{"channel": 1, "w": 230.5}, {"channel": 2, "w": 12}]
    assert make_driver(f"{server.base}/empty-list").read() == []


@pytest.mark.parametrize(
    "field_path, expected",
    [
        ("data.current", [{"pm25": 7}]),
        ("items", [{"i": 0}, {"i": 1}]),
        ("items.1", [{"i": 1}]),
    ],
)
def test_field_path_selects_the_object(
    server: JsonHttpServer, field_path: str, expected: list[dict[str, Any]]
) -> None:
    samples = make_driver(f"{server.base}/nested", field_path=field_path).read()
    assert [s.payload for s in samples] == expected


@pytest.mark.parametrize(
    "field_path, problem",
    [
        ("data.previous", "response has no 'data.previous'"),
        ("items.2", "response has no 'items.2'"),
        ("data.current.pm25", "response is a number, not an object"),
    ],
)
def test_field_path_problems_are_named(
    server: JsonHttpServer, field_path: str, problem: str
) -> None:
    with pytest.raises(DriverError, match=problem):
        make_driver(f"{server.base}/nested", field_path=field_path).read()


@pytest.mark.parametrize(
    "path, problem",
    [
        ("/error", "returned HTTP 500 Internal Server Error"),
        ("/missing", "returned HTTP 404 Not Found"),
        ("/html", "response is not valid JSON"),
        ("/nan", "response is not valid JSON: NaN is not valid JSON"),
        ("/string", "response is a string, not an object or a list of objects"),
        ("/number", "response is a number, not an object"),
        ("/mixed-list", "item 1 of the response is a number, not an object"),
    ],
)
def test_bad_responses_raise_driver_error_naming_the_problem(
    server: JsonHttpServer, path: str, problem: str
) -> None:
    with pytest.raises(DriverError, match=problem) as caught:
        make_driver(f"{server.base}{path}").read()
    assert str(caught.value).startswith(f"GET {server.base}{path}")


def test_timeout_raises_driver_error(server: JsonHttpServer) -> None:
    driver = make_driver(f"{server.base}/slow", timeout_s=0.3)
    with pytest.raises(DriverError, match=r"GET http://127\.0\.0\.1:\d+/slow timed out after 0.3"):
        driver.read()


def test_connection_refused_raises_driver_error() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(DriverError, match=f"GET http://127.0.0.1:{port}/x failed") as caught:
        make_driver(f"http://user:pa55@127.0.0.1:{port}/x?token=s3cret").read()
    assert "s3cret" not in str(caught.value) and "pa55" not in str(caught.value)


def test_errors_do_not_reveal_credentials(server: JsonHttpServer) -> None:
    url = f"http://ops:pa55@127.0.0.1:{server.server_address[1]}/error?token=s3cret"
    with pytest.raises(DriverError) as caught:
        make_driver(url).read()
    assert "pa55" not in str(caught.value) and "s3cret" not in str(caught.value)


def test_one_session_keeps_its_connection_across_reads(server: JsonHttpServer) -> None:
    driver = make_driver(f"{server.base}/current")
    driver.read()
    driver.read()
    assert len(server.requests) == 2
    assert server.requests[0]["client"] == server.requests[1]["client"]
    driver.close()
    driver.read()  # a closed driver opens a new session on the next read
    assert len(server.requests) == 3
    assert server.requests[2]["client"] != server.requests[0]["client"]
    driver.close()


def test_tls_certificate_is_verified_unless_turned_off(tls_server: JsonHttpServer) -> None:
    url = f"https://127.0.0.1:{tls_server.server_address[1]}/current"
    with pytest.raises(DriverError, match="certificate verify failed"):
        make_driver(url).read()
    with pytest.warns(Warning, match="Unverified HTTPS request"):
        samples = make_driver(url, verify_tls=False).read()
    assert [s.payload for s in samples] == [{"temperature_c": 21.5, "station": "roof"}]


def test_utf8_text_comes_through(server: JsonHttpServer) -> None:
    assert make_driver(f"{server.base}/unicode").read()[0].payload == {"place": "Zürich ☢"}

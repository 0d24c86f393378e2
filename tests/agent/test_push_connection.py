"""The push client's connection: kept alive, sent again once on a fresh connection when a
kept-alive one was closed, proxies from the environment, and no OpenSSL for http."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from beam_agent.push import OutcomeKind, ReceiverClient

from tests.support.agent import write_agent_config
from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.raw_http import ClosingServer, DroppingServer, ForwardProxy, ScriptedServer
from tests.support.receiver_double import ReceiverDouble

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def clients() -> Iterator[list[ReceiverClient]]:
    made: list[ReceiverClient] = []
    yield made
    for client in made:
        client.close()


def client_for(clients: list[ReceiverClient], url: str) -> ReceiverClient:
    client = ReceiverClient(url, DEVICE, lambda: DEVICE_TOKEN, 5.0, "1.2.3")
    clients.append(client)
    return client


def test_one_connection_carries_many_requests(clients: list[ReceiverClient]) -> None:
    with ReceiverDouble(token=DEVICE_TOKEN) as receiver:
        client = client_for(clients, receiver.url)
        assert all(client.post_json("/api/telemetry", {}).ok for _ in range(3))
        assert client.connection is not None and client.connection.requests == 3


def test_a_kept_alive_connection_the_server_closed_is_replaced_once(
    clients: list[ReceiverClient],
) -> None:
    with ClosingServer() as server:
        client = client_for(clients, server.url)
        outcomes = [client.post_json("/api/readings", {"readings": []}) for _ in range(3)]
        assert [outcome.kind for outcome in outcomes] == [OutcomeKind.OK] * 3
        assert len(server.request_lines) == 3  # each request arrived once
        assert server.connections == 3


def test_a_fresh_connection_dropped_without_an_answer_is_not_sent_again(
    clients: list[ReceiverClient],
) -> None:
    with DroppingServer() as server:
        outcome = client_for(clients, server.url).post_json("/api/readings", {"readings": []})
        assert outcome.kind is OutcomeKind.RETRY and outcome.status is None
        assert "closed the connection without an answer" in outcome.message
        assert len(server.request_lines) == 1


def chunked(*parts: bytes) -> bytes:
    """A 200 with `parts` as chunks (one with a chunk extension) and a trailer field."""
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in parts)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    return head + b"\r\n\r\n" + body + b"0\r\nX-Trailer: t\r\n\r\n"


CHUNKED_OK = chunked(b'{"accepted":3', b',"duplicates":1}')
UNFRAMED_OK = b'HTTP/1.0 200 OK\r\n\r\n{"accepted":2,"duplicates":0}'


def test_a_chunked_answer_is_read_whole_and_keeps_the_connection(
    clients: list[ReceiverClient],
) -> None:
    with ScriptedServer([CHUNKED_OK, CHUNKED_OK]) as server:
        client = client_for(clients, server.url)
        outcomes = [client.post_json("/api/readings", {"readings": []}) for _ in range(2)]
        assert [(o.kind, o.accepted, o.duplicates) for o in outcomes] == [
            (OutcomeKind.OK, 3, 1)
        ] * 2
        assert server.connections == 1


def test_an_answer_without_a_length_is_read_to_the_close_and_not_reused(
    clients: list[ReceiverClient],
) -> None:
    with ScriptedServer([UNFRAMED_OK]) as server:
        client = client_for(clients, server.url)
        outcomes = [client.post_json("/api/readings", {"readings": []}) for _ in range(2)]
        assert [(o.kind, o.accepted) for o in outcomes] == [(OutcomeKind.OK, 2)] * 2
        assert server.connections == 2 and client.connection is None


def test_an_oversized_answer_is_cut_at_64_kib_and_its_connection_closed(
    clients: list[ReceiverClient],
) -> None:
    page = b"<html>" + b"x" * (1 << 20)
    oversized = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
    with ScriptedServer([oversized, oversized]) as server:
        client = client_for(clients, server.url)
        outcome = client.post_json("/api/readings", {"readings": []})
        assert outcome.kind is OutcomeKind.RETRY and outcome.status == 502
        assert client.connection is None  # the rest of the page is never read


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",  # api_url's port is another service
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 7\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["not-http", "two-lengths", "garbled-chunk"],
)
def test_a_garbled_answer_is_a_retry_that_names_it(
    clients: list[ReceiverClient], raw: bytes
) -> None:
    with ScriptedServer([raw]) as server:
        client = client_for(clients, server.url)
        outcome = client.post_json("/api/readings", {"readings": []})
        assert outcome.kind is OutcomeKind.RETRY and outcome.status is None
        assert "garbled answer" in outcome.message
        assert client.connection is None


def test_http_proxy_from_the_environment_gets_absolute_uris(
    clients: list[ReceiverClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        client = client_for(clients, "http://receiver.invalid:8000/beam")
        assert client.post_json("/api/telemetry", {}).ok
        assert proxy.request_lines == [
            "POST http://receiver.invalid:8000/beam/api/telemetry HTTP/1.1"
        ]
        assert proxy.headers[0]["host"] == "receiver.invalid:8000"
        assert proxy.headers[0]["proxy-authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
        assert proxy.headers[0]["authorization"] == f"Bearer {DEVICE_TOKEN}"


def test_no_proxy_exempts_the_receiver(
    clients: list[ReceiverClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy, ReceiverDouble(token=DEVICE_TOKEN) as receiver:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert client_for(clients, receiver.url).post_json("/api/telemetry", {}).ok
        assert proxy.request_lines == [] and len(receiver.requests()) == 1


LEFT_OUT = ("ssl", "_ssl", "requests", "urllib3", "http.client", "shutil", "encodings.idna", "csv")


def test_an_http_agent_loads_neither_openssl_nor_requests(tmp_path: Path) -> None:
    """What `beam-agent run` imports for an http:// receiver, in a fresh interpreter: ssl
    (OpenSSL, about 4 MiB of RSS), requests and urllib3 stay out, and so do argparse's
    shutil (with bz2 and lzma), the idna codec and csv."""
    script = f"""
import sys
from pathlib import Path
from beam_agent import cli, logs, runner, telemetry
from beam_agent.config import load_config
from beam_agent.push import ReceiverClient
cli.build_parser().parse_args(["run", "--config", sys.argv[1]])
config = load_config(Path(sys.argv[1]), check_files=True)
config.sensors[0].create_driver().read()
telemetry.local_ip_address("http://localhost:9")
client = ReceiverClient(config.api_url, "d", lambda: "t", 1.0, "1")
client.post_json("/api/telemetry", {{}})  # nobody listens: a network error
print(sorted(m for m in {LEFT_OUT!r} if m in sys.modules))
"""
    config = write_agent_config(
        tmp_path,
        "http://127.0.0.1:9",
        [{"name": "system", "type": "system", "interval_ms": 10000, "top_processes": 0}],
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "agent"), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-c", script, str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

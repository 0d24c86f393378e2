"""The agent over HTTPS: a real TLS server on 127.0.0.1 (`TLSProxy` in front of the receiver
double) with certificates made by openssl, as the collection's fleet CA makes them.

A receiver this node cannot verify (another CA, another host name, no TLS at all) is a `tls`
failure: nothing is sent, nothing is lost, it is logged once, and `status` names it; once
ca_file holds the right CA, every queued reading arrives, once.
"""

from __future__ import annotations

import json
import logging
import shutil
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from beam_agent.config import ConfigError, load_config
from beam_agent.push import (
    Backoff,
    OutcomeKind,
    Pusher,
    ReceiverClient,
    drain,
    network_failure,
)
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.processes import Command
from tests.support.raw_http import ForwardProxy
from tests.support.receiver_double import ReceiverDouble
from tests.support.tls import FleetPki, ServerCertificate, TLSProxy, make_fleet_pki
from tests.support.waiting import wait_for

START = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)


def readings(count: int) -> list[Reading]:
    return [
        Reading(DEVICE, "geiger", "mightyohm", {"cpm": i}, START + timedelta(seconds=i))
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> FleetPki:
    return make_fleet_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def receiver() -> Iterator[ReceiverDouble]:
    with ReceiverDouble(token=DEVICE_TOKEN) as double:
        yield double


def proxy(receiver: ReceiverDouble, certificate: ServerCertificate) -> TLSProxy:
    return TLSProxy(certificate, receiver.port)


@pytest.fixture
def https(receiver: ReceiverDouble, pki: FleetPki) -> Iterator[TLSProxy]:
    """The receiver double behind TLS with the fleet CA's certificate for localhost."""
    with proxy(receiver, pki.server) as front:
        yield front


@pytest.fixture
def clients() -> Iterator[list[ReceiverClient]]:
    made: list[ReceiverClient] = []
    yield made
    for client in made:
        client.close()


def client_for(clients: list[ReceiverClient], url: str, ca_file: Optional[Path]) -> ReceiverClient:
    client = ReceiverClient(url, DEVICE, lambda: DEVICE_TOKEN, 10.0, "1.2.3", ca_file=ca_file)
    clients.append(client)
    return client


# -- the client and the push loop, in this process --------------------------------------------


def test_the_fleet_ca_verifies_the_receiver_and_readings_arrive(
    receiver: ReceiverDouble,
    https: TLSProxy,
    pki: FleetPki,
    queue: ReadingQueue,
    clients: list[ReceiverClient],
) -> None:
    queue.enqueue(readings(30))
    for host in ("localhost", "127.0.0.1"):  # a name and an address the certificate has
        client = client_for(clients, https.url(host), pki.ca.cert)
        assert client.post_json("/api/telemetry", {"node_id": DEVICE}).ok
    result = drain(queue, client_for(clients, https.url(), pki.ca.cert), batch_size=10)
    assert result.failure is None and result.sent == 30
    assert receiver.stored_seqs(DEVICE) == set(range(1, 31))
    assert https.handshakes >= 3 and https.refused == 0
    assert queue.status()["last_push"]["ok"] is True
    assert "failure" not in queue.status()["last_push"]


def test_a_wrong_ca_sends_nothing_loses_nothing_and_says_what_to_fix(
    tmp_path: Path,
    receiver: ReceiverDouble,
    https: TLSProxy,
    pki: FleetPki,
    queue: ReadingQueue,
    clients: list[ReceiverClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca_file = tmp_path / "fleet-ca.crt"
    shutil.copy(pki.other_ca.cert, ca_file)
    pusher = Pusher(
        queue,
        client_for(clients, https.url("localhost"), ca_file),
        batch_size=10,
        interval_ms=50,
        backoff=Backoff(random_fn=lambda: 1.0),
    )
    queue.enqueue(readings(25))
    caplog.set_level(logging.WARNING, logger="beam_agent.push")
    delays = [pusher.cycle() for _ in range(5)]

    failure = pusher.last_result.failure if pusher.last_result else None
    assert failure is not None and failure.kind is OutcomeKind.TLS and failure.retryable
    assert failure.status is None
    assert failure.message.startswith("TLS: the receiver's certificate is not trusted by")
    assert str(ca_file) in failure.message and "fleet CA" in failure.message
    assert receiver.requests() == [] and https.handshakes == 0 and https.refused >= 5
    assert queue.depth() == 25 and queue.counters()["dead_lettered"] == 0
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]  # backs off as network errors do
    last_push = queue.status()["last_push"]
    assert last_push["ok"] is False and last_push["failure"] == "tls"
    assert last_push["detail"] == failure.message
    warnings = [r.getMessage() for r in caplog.records if "push failed" in r.getMessage()]
    assert len(warnings) == 1 and failure.message in warnings[0]  # once, not per retry

    # The right CA in the same file: the next connection reads it, everything arrives once.
    shutil.copy(pki.ca.cert, ca_file)
    caplog.set_level(logging.INFO, logger="beam_agent.push")
    assert pusher.cycle() == pusher.interval_s
    while queue.depth():
        pusher.cycle()
    assert receiver.stored_seqs(DEVICE) == set(range(1, 26))
    assert set(receiver.receipt_counts().values()) == {1}
    logged = [r.getMessage() for r in caplog.records]
    assert logged[1:] == ["receiver accepts readings again (HTTP 200: delivered 25 (0 duplicates))"]
    assert queue.status()["last_push"]["ok"] is True


def test_without_ca_file_the_default_bundle_refuses_the_fleet_certificate(
    https: TLSProxy, clients: list[ReceiverClient]
) -> None:
    outcome = client_for(clients, https.url("localhost"), None).post_json("/api/telemetry", {})
    assert outcome.kind is OutcomeKind.TLS
    assert "not trusted by the default CA bundle" in outcome.message
    assert "set ca_file to the CA that signed" in outcome.message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_certificate_for_another_host_name_is_refused(
    host: str,
    receiver: ReceiverDouble,
    pki: FleetPki,
    queue: ReadingQueue,
    clients: list[ReceiverClient],
) -> None:
    queue.enqueue(readings(5))
    with proxy(receiver, pki.wrong_name) as front:
        result = drain(queue, client_for(clients, front.url(host), pki.ca.cert), batch_size=10)
    assert result.failure is not None and result.failure.kind is OutcomeKind.TLS
    message = result.failure.message
    assert "does not name the host in api_url" in message and repr(host) in message
    assert "issue the receiver a certificate" in message
    assert receiver.requests() == [] and queue.depth() == 5
    assert queue.status()["last_push"]["failure"] == "tls"


def test_plain_http_behind_an_https_url_is_a_tls_failure(
    receiver: ReceiverDouble, pki: FleetPki, clients: list[ReceiverClient]
) -> None:
    url = receiver.url.replace("http://", "https://")
    outcome = client_for(clients, url, pki.ca.cert).post_json("/api/telemetry", {})
    assert outcome.kind is OutcomeKind.TLS
    assert "does api_url's port serve HTTPS" in outcome.message


def test_a_ca_file_that_goes_bad_while_running_is_a_tls_failure(
    tmp_path: Path, https: TLSProxy, clients: list[ReceiverClient]
) -> None:
    """`run` does not check the file; the push names it, and the agent keeps running."""
    ca_file = tmp_path / "fleet-ca.crt"
    client = client_for(clients, https.url("localhost"), ca_file)
    missing = client.post_json("/api/telemetry", {})
    assert missing.kind is OutcomeKind.TLS
    assert missing.message.startswith(f"TLS: cannot read ca_file {ca_file}")
    ca_file.write_text("not a certificate\n")
    junk = client_for(clients, https.url("localhost"), ca_file).post_json("/api/telemetry", {})
    assert junk.kind is OutcomeKind.TLS
    assert f"the CA in ca_file {ca_file} holds no usable certificate" in junk.message


def test_requests_ca_bundle_does_not_replace_ca_file(
    https: TLSProxy,
    pki: FleetPki,
    clients: list[ReceiverClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca.cert))
    client = client_for(clients, https.url("localhost"), pki.ca.cert)
    assert client.post_json("/api/telemetry", {}).ok


def tls_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def test_classification_of_tls_failures(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    expired = network_failure(tls_error(10, "certificate has expired"), 10.0, ca_file)
    assert expired.kind is OutcomeKind.TLS
    assert "certificate has expired" in expired.message and "clock" in expired.message
    early = network_failure(tls_error(9, "certificate is not yet valid"), 10.0, ca_file)
    assert "this node's clock" in early.message
    plain = network_failure(ConnectionRefusedError(111, "Connection refused"), 10.0, ca_file)
    assert plain.kind is OutcomeKind.RETRY and plain.message.startswith("network error:")
    timeout = network_failure(TimeoutError("timed out"), 10.0, ca_file)
    assert timeout.kind is OutcomeKind.RETRY
    # a name check in Python raises a CertificateError without OpenSSL's fields
    python_words = ssl.CertificateError("hostname 'localhost' doesn't match 'receiver.example'")
    named = network_failure(python_words, 10.0, ca_file)
    assert named.kind is OutcomeKind.TLS
    assert named.message.startswith(
        "TLS: the receiver's certificate does not name the host in api_url "
        "(hostname 'localhost' doesn't match 'receiver.example')"
    )
    other = network_failure(ssl.SSLEOFError(8, "EOF"), 10.0, None)
    assert other.message == "TLS: the TLS handshake with the receiver failed (EOF)"
    key_ids = network_failure(tls_error(30, "subject key identifier mismatch"), 10.0, ca_file)
    assert "is not trusted by the CA in ca_file" in key_ids.message  # not a host name problem
    # the same cause, the same words: a retry is not a new problem to log
    first, again = (network_failure(tls_error(20, "x"), 10.0, ca_file) for _ in range(2))
    assert first == again


# -- config.toml and check-config -------------------------------------------------------------


def test_ca_file_is_relative_to_the_config_and_optional(tmp_path: Path, pki: FleetPki) -> None:
    shutil.copy(pki.ca.cert, tmp_path / "fleet-ca.crt")
    config = load_config(
        write_agent_config(tmp_path, "https://localhost:8443", ca_file=Path("fleet-ca.crt")),
        check_files=True,
    )
    assert config.ca_file == tmp_path / "fleet-ca.crt"
    assert load_config(write_agent_config(tmp_path, "https://localhost:8443")).ca_file is None
    # `run` (no check_files) starts without the file: the push will report it
    gone = write_agent_config(tmp_path, "https://localhost:8443", ca_file=tmp_path / "gone.crt")
    assert load_config(gone).ca_file == tmp_path / "gone.crt"
    with pytest.raises(ConfigError):
        load_config(gone, check_files=True)


def test_check_config_accepts_a_ca_file(tmp_path: Path, pki: FleetPki, beam_agent: Command) -> None:
    config = write_agent_config(tmp_path, "https://localhost:8443", ca_file=pki.ca.cert)
    result = beam_agent("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"receiver verified against {pki.ca.cert}" in result.stdout


@pytest.mark.parametrize(
    ("api_url", "content", "problem"),
    [
        (
            "http://localhost:8000",
            "ca",
            "ca_file: verifies an https:// receiver, but api_url is 'http://localhost:8000': "
            "use https:// in api_url, or remove ca_file",
        ),
        ("https://localhost:8443", None, "ca_file: cannot read {path}: No such file or directory"),
        ("https://localhost:8443", "dir", "ca_file: cannot read {path}: Is a directory"),
        (
            "https://localhost:8443",
            "key",
            "ca_file: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ),
        (
            "https://localhost:8443",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "ca_file: {path} holds no PEM certificate that can be loaded",
        ),
    ],
    ids=["http-api-url", "missing", "directory", "key-only", "broken-pem"],
)
def test_check_config_refuses_a_ca_file_that_cannot_work(
    tmp_path: Path,
    pki: FleetPki,
    beam_agent: Command,
    api_url: str,
    content: Optional[str],
    problem: str,
) -> None:
    ca_file = tmp_path / "fleet-ca.crt"
    if content == "ca":
        shutil.copy(pki.ca.cert, ca_file)
    elif content == "key":
        shutil.copy(pki.ca.key, ca_file)
    elif content == "dir":
        ca_file.mkdir()
    elif content is not None:
        ca_file.write_text(content)
    config = write_agent_config(tmp_path, api_url, ca_file=ca_file)
    result = beam_agent("check-config", "--config", str(config))
    assert result.returncode == 78
    assert result.stderr.startswith(f"{config}: {problem.format(path=ca_file)}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_run_refuses_ca_file_with_an_http_api_url(
    tmp_path: Path, pki: FleetPki, beam_agent: Command
) -> None:
    config = write_agent_config(tmp_path, "http://localhost:8000", ca_file=pki.ca.cert)
    result = beam_agent("run", "--config", str(config))
    assert result.returncode == 78
    assert f"{config}: ca_file: verifies an https:// receiver" in result.stderr


# -- the real agent ---------------------------------------------------------------------------


def test_the_agent_names_a_wrong_host_name_in_status_and_logs_it_once(
    tmp_path: Path, receiver: ReceiverDouble, pki: FleetPki, beam_agent: Command
) -> None:
    with proxy(receiver, pki.wrong_name) as front:
        config = write_agent_config(
            tmp_path,
            front.url("localhost"),
            [counter_sensor("counter", 50)],
            ca_file=pki.ca.cert,
            push={"interval_ms": 100},
            telemetry={"interval_s": 1},
        )
        agent = AgentProcess(config)
        agent.start()
        try:
            wait_for(lambda: front.refused >= 6, 60, "a few refused handshakes (retries)")
        finally:
            assert agent.terminate() == 0, agent.log_tail()

    status = json.loads(beam_agent("status", "--config", str(config), "--json").stdout)
    assert receiver.requests() == []  # no request got through the handshake
    assert status["counters"]["pushed"] == 0
    assert status["depth"] == status["counters"]["last_seq"] > 0
    assert status["last_push"]["failure"] == "tls"
    assert "does not name the host in api_url" in status["last_push"]["detail"]
    human = beam_agent("status", "--config", str(config)).stdout
    assert "last push:         TLS: the receiver's certificate does not name" in human
    assert "push failing:      tls" in human

    messages = [json.loads(line)["msg"] for line in agent.log_tail(10**6).splitlines()]
    pushes = [m for m in messages if m.startswith("push failed")]
    heartbeats = [m for m in messages if "registration failed" in m or "heartbeat failed" in m]
    assert len(pushes) == 1 and "TLS: the receiver's certificate" in pushes[0], messages
    assert len(heartbeats) == 1 and "TLS:" in heartbeats[0], messages


def test_https_through_a_proxy_from_the_environment_tunnels_and_verifies(
    clients: list[ReceiverClient],
    https: TLSProxy,
    pki: FleetPki,
    receiver: ReceiverDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY: a CONNECT tunnel, TLS end to end with the receiver (the proxy sees no
    token), the certificate verified against ca_file for the receiver's name."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ForwardProxy() as forward:
        monkeypatch.setenv("HTTPS_PROXY", forward.url)
        client = client_for(clients, https.url("localhost"), pki.ca.cert)
        assert client.post_json("/api/telemetry", {}).ok
        assert forward.request_lines == [f"CONNECT localhost:{https.port} HTTP/1.1"]
        assert "authorization" not in forward.headers[0]
        assert len(receiver.requests()) == 1

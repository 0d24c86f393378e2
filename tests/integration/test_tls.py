"""The real agent and the real receiver over HTTPS: `beam-receiver serve` behind a TLS front
(`TLSProxy`, as nginx is in the fleet) with a certificate from a CA made by openssl, as the
collection's fleet CA is. A wrong CA or a wrong host name delivers nothing and loses nothing;
with the right CA every reading arrives exactly once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE
from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver
from tests.support.tls import FleetPki, TLSProxy, make_fleet_pki
from tests.support.waiting import wait_for


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    with configure_receiver(
        tmp_path / "receiver",
        expected_nodes=agent_nodes(DEVICE),
        telemetry_interval_s=2,
        workers=2,
    ) as served:
        yield served


@pytest.fixture
def pki(tmp_path: Path) -> FleetPki:
    return make_fleet_pki(tmp_path / "pki")


def agent_config(directory: Path, url: str, ca_file: Path) -> Path:
    return write_agent_config(
        directory,
        url,
        [counter_sensor("counter", 20)],
        ca_file=ca_file,
        push={"interval_ms": 200, "batch_size": 100},
        telemetry={"interval_s": 1},
    )


def status_json(agent: AgentProcess) -> dict[str, Any]:
    result = agent.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def refused_while_running(agent: AgentProcess, front: TLSProxy) -> dict[str, Any]:
    """Run the agent until it has retried a few times, stop it, and return its status."""
    agent.start()
    try:
        wait_for(lambda: front.refused >= 5, 60, "a few refused TLS handshakes (retries)")
        wait_for(lambda: agent.status()["depth"] >= 20, 60, "readings to queue up")
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    return status_json(agent)


def log_messages(agent: AgentProcess, prefix: str) -> list[str]:
    lines = agent.log_tail(10**7).splitlines()
    return [m for m in (json.loads(line)["msg"] for line in lines) if m.startswith(prefix)]


def test_a_wrong_ca_holds_the_readings_until_the_fleet_ca_delivers_them_once(
    receiver: ReceiverProcess, pki: FleetPki, tmp_path: Path
) -> None:
    ca_file = tmp_path / "fleet-ca.crt"
    shutil.copy(pki.other_ca.cert, ca_file)  # a CA, but not the one that signed the receiver
    with TLSProxy(pki.server, receiver.port) as front:
        agent = AgentProcess(agent_config(tmp_path, front.url("localhost"), ca_file))
        status = refused_while_running(agent, front)

        assert front.handshakes == 0 and receiver.readings(DEVICE) == []
        assert receiver.get(f"/api/nodes/{DEVICE}")["status"] == "offline"  # never heard
        assert status["counters"]["pushed"] == 0 and status["counters"]["dead_lettered"] == 0
        assert status["depth"] == status["counters"]["last_seq"] >= 20  # nothing lost
        assert status["last_push"]["failure"] == "tls"
        detail = status["last_push"]["detail"]
        trusted_by = (
            f"TLS: the receiver's certificate is not trusted by the CA in ca_file {ca_file}"
        )
        assert detail.startswith(trusted_by)
        assert "ca_file must hold the CA that signed the receiver's certificate" in detail
        human = agent.cli("status").stdout
        assert f"last push:         {detail}" in human and "push failing:      tls" in human
        assert len(log_messages(agent, "push failed")) == 1  # logged once, not per retry
        assert len(log_messages(agent, "registration failed")) == 1

        # The fix: the fleet CA in ca_file (as the agent role copies it), then a restart.
        shutil.copy(pki.ca.cert, ca_file)
        assert agent.cli("check-config").returncode == 0
        queued = status["depth"]
        agent.start()
        try:
            wait_for(
                lambda: receiver.get(f"/api/nodes/{DEVICE}")["status"] == "online",
                60,
                "the agent's heartbeat over HTTPS",
            )
            agent.wait_for_pushes(queued)
        finally:
            assert agent.terminate() == 0, agent.log_tail()
        last_seq = agent.status()["counters"]["last_seq"]
        agent.drain(receiver)  # what SIGTERM left queued, over HTTPS too

    seqs = [reading["seq"] for reading in receiver.readings(DEVICE)]
    assert seqs == list(range(1, last_seq + 1)), "a seq is missing, reordered or stored twice"
    assert last_seq > queued
    final = status_json(agent)
    assert final["last_push"]["ok"] is True and "failure" not in final["last_push"]


def test_a_certificate_for_another_host_name_is_refused_the_same_way(
    receiver: ReceiverProcess, pki: FleetPki, tmp_path: Path
) -> None:
    with TLSProxy(pki.wrong_name, receiver.port) as front:
        agent = AgentProcess(agent_config(tmp_path, front.url("127.0.0.1"), pki.ca.cert))
        status = refused_while_running(agent, front)

    assert receiver.readings(DEVICE) == []
    assert status["depth"] == status["counters"]["last_seq"] >= 20
    assert status["counters"]["pushed"] == 0
    assert status["last_push"]["failure"] == "tls"
    assert status["last_push"]["detail"].startswith(
        "TLS: the receiver's certificate does not name the host in api_url "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.)"
    )
    assert len(log_messages(agent, "push failed")) == 1

"""Fault 1: the agent is killed with SIGKILL at random moments while it pushes, 50 times.

A real `beam-agent run` (100 Hz virtual counter, a push every 50 ms) against a real
`beam-receiver serve`. Each run is killed at a random moment after it has started pushing,
so kills land between reads, inside the queue's commits and inside HTTP requests (a batch the
receiver stored but the agent never heard acknowledged is re-sent by the next run: the
`resent` count). At the end: every seq the agent handed out is stored at the receiver exactly
once, in seq order.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.faults import Delivery, env_number, report
from tests.support.receiver import ReceiverProcess

KILLS = int(env_number("BEAM_FAULT_KILLS", 50))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_agent_sigkill_while_pushing_loses_and_doubles_nothing(
    receiver: ReceiverProcess, agent_processes: list[AgentProcess], tmp_path: Path
) -> None:
    rng = random.Random(6)
    config = write_agent_config(
        tmp_path,
        receiver.url,
        [counter_sensor("counter", 10)],
        telemetry={"interval_s": 1},
        push={"batch_size": 100, "interval_ms": 50, "timeout_s": 5},
    )
    agent = AgentProcess(config)
    agent_processes.append(agent)
    for _ in range(KILLS):
        pushed = agent.status()["counters"]["pushed"] if agent.state_dir.exists() else 0
        agent.start()
        agent.wait_for_pushes(more_than=pushed)
        time.sleep(rng.uniform(0.0, 0.6))
        agent.kill()
    killed_status = agent.status()
    agent.drain(receiver)

    delivery = Delivery.of(agent, receiver)
    counters = agent.status()["counters"]
    report(
        "agent-sigkill",
        kills=KILLS,
        produced=delivery.produced,
        stored=len(delivery.stored),
        missing=len(delivery.missing),
        duplicates=delivery.duplicates,
        out_of_order=not delivery.in_order,
        resent=counters["duplicates_acknowledged"],
        queued_at_last_kill=killed_status["depth"],
    )
    assert delivery.produced > KILLS * 20, "the agent hardly ran between kills"
    assert not delivery.missing, f"never stored: {delivery.missing[:20]}"
    assert delivery.duplicates == 0
    assert delivery.unknown == 0
    assert delivery.in_order, "the receiver stored readings out of seq order"
    assert counters["dropped"] == 0 and counters["dead_lettered"] == 0

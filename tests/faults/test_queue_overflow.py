"""Fault 3: the agent's disk bound is reached during an outage; the overflow policy applies.

A real `beam-agent run` (100 Hz virtual counter, `[queue] max_readings = 500`) starts while
nothing listens on the receiver's port, runs until its queue has dropped at least as many
readings as it holds, then the real receiver comes up and the agent drains. The number
dropped must be exact, by seq: produced minus stored at the receiver, no more, no less. And
it must be visible where an operator looks: `beam-agent status` (text and --json), the
heartbeat's metrics at the receiver, GET /api/nodes/{id} and the dashboard's fleet table and
node page. Which readings went is the policy's: `drop_oldest` loses one run from the very
first seq; `thin` keeps the first reading and loses readings spread across the outage.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE
from tests.support.faults import Delivery, report, runs
from tests.support.receiver import ReceiverProcess

BOUND = 500


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy", ["drop_oldest", "thin"])
def test_queue_bound_during_an_outage_drops_an_exact_visible_count(
    policy: str,
    receiver_down: ReceiverProcess,
    agent_processes: list[AgentProcess],
    tmp_path: Path,
) -> None:
    receiver = receiver_down
    config = write_agent_config(
        tmp_path,
        receiver.url,
        [counter_sensor("counter", 10)],
        telemetry={"interval_s": 1},
        queue={"max_readings": BOUND, "overflow": policy},
        push={"batch_size": 200, "interval_ms": 100, "timeout_s": 2},
    )
    agent = AgentProcess(config)
    agent_processes.append(agent)
    agent.start()

    # The outage: sample the queue until it has dropped as many readings as it can hold.
    largest = 0
    deadline = time.monotonic() + 120
    while True:
        status = agent.status()
        largest = max(largest, status["stored"])
        if status["counters"]["dropped"] >= BOUND:
            break
        assert time.monotonic() < deadline, f"the queue never overflowed: {status}"
        time.sleep(0.2)
    assert status["counters"]["pushed"] == 0, "pushed with no receiver listening"

    receiver.start()
    recovered_at = time.monotonic()
    # The push client retries with capped exponential back-off (full jitter): wait for it.
    while agent.status()["counters"]["pushed"] < BOUND:
        largest = max(largest, agent.status()["stored"])
        assert time.monotonic() < recovered_at + 330, "the agent never resumed pushing"
        time.sleep(0.2)
    recovery_s = time.monotonic() - recovered_at
    assert agent.terminate() == 0
    agent.drain(receiver)

    delivery = Delivery.of(agent, receiver)
    counters = agent.status()["counters"]
    missing = delivery.missing
    node = receiver.get(f"/api/nodes/{DEVICE}")
    report(
        f"queue-overflow-{policy}",
        bound=BOUND,
        max_stored=largest,
        produced=delivery.produced,
        stored=len(delivery.stored),
        dropped=counters["dropped"],
        missing=len(missing),
        miscounted=abs(counters["dropped"] - len(missing)),
        duplicates=delivery.duplicates,
        missing_runs=len(runs(missing)),
        node_api_dropped=node["dropped"],
        recovery_s=round(recovery_s, 1),
    )
    dropped = counters["dropped"]
    assert largest <= BOUND, "the queue held more than max_readings"
    assert dropped >= BOUND
    assert dropped == len(missing), "the dropped count is not the number of readings lost"
    assert delivery.duplicates == 0 and delivery.unknown == 0 and delivery.in_order
    if policy == "drop_oldest":
        assert runs(missing) == [(1, dropped)], "drop_oldest lost something other than the oldest"
    else:
        assert 1 in delivery.stored, "thin dropped the first reading of the history"
        assert len(runs(missing)) > 10, f"thin lost runs, not a spread: {runs(missing)[:10]}"

    # Where an operator sees it: the agent's status, text and JSON.
    text = agent.cli("status")
    assert text.returncode == 0, text.stderr
    assert re.search(rf"^dropped:\s+{dropped}$", text.stdout, re.MULTILINE), text.stdout
    as_json = agent.cli("status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["counters"]["dropped"] == dropped

    # The heartbeat's metrics and the node API (the draining agent's heartbeat is the last).
    assert node["metrics"]["dropped"] == dropped
    assert node["dropped"] == dropped

    # The dashboard: the node's row in the fleet table and its page.
    dashboard = receiver.dashboard()
    fleet = dashboard.get(receiver.url + "/", timeout=30).text
    row = re.search(rf'<tr data-node-id="{DEVICE}".*?</tr>', fleet, re.DOTALL)
    assert row, "the node has no row in the fleet table"
    assert re.search(rf'data-label="Dropped" class="num">{dropped}</td>', row.group(0))
    page = dashboard.get(f"{receiver.url}/nodes/{DEVICE}", timeout=30).text
    assert f'<dd id="node-dropped">{dropped}</dd>' in page

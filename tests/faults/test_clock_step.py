"""Fault 4: the node's wall clock steps backwards while the agent runs, twice.

The real agent runs under Debian's libfaketime (`make faketime` installs it): its wall clock
is the real one plus the offset in a file that the test rewrites while the agent runs
(FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE), first 1 h back, then another 30 min back. The
monotonic clock stays real (FAKETIME_DONT_FAKE_MONOTONIC), as it does when NTP or an
operator steps the wall clock. The agent is multi-threaded, so it gets the library's
thread-safe build (libfaketimeMT): with the plain one, two runs of three here showed a
spurious jump forward and back again. The readings' timestamps go backwards; their seqs do
not. What must hold at the real receiver: every seq stored exactly once in seq order (stored
order is GET /api/readings' order), the counter values in that order unbroken, analytics
buckets that agree reading for reading with the stored timestamps, `latest` answering as
documented (newest by timestamp), and the node still online (the receiver judges by its own
clock).
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE
from tests.support.faults import Delivery, report
from tests.support.readings import parse_time
from tests.support.receiver import ReceiverProcess

STEPS_S = (-3600, -5400)  # the offsets written in turn: 1 h back, then 30 min further
LIBFAKETIME_PATTERNS = (
    "/usr/lib/*/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)


def find_libfaketime() -> str:
    configured = os.environ.get("BEAM_LIBFAKETIME")
    if configured:
        return configured
    for pattern in LIBFAKETIME_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    pytest.fail(
        "libfaketimeMT.so.1 not found: run `make faketime` (it installs Debian's faketime "
        "package) or `apt-get install -y faketime`, or set BEAM_LIBFAKETIME to its path"
    )


def set_offset(clock: Path, seconds: int) -> None:
    """Replace the offset file at once: libfaketime rereads it on every clock call, and a
    half-written file would read as no offset (a spurious forward jump and back)."""
    draft = clock.with_suffix(".new")
    draft.write_text(f"{seconds:+d}\n")
    os.replace(draft, clock)


def epoch_ms(timestamp: str) -> int:
    moment = parse_time(timestamp)
    return int(moment.timestamp() * 1000)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wall_clock_stepping_back_keeps_order_and_exactly_once(
    receiver: ReceiverProcess, agent_processes: list[AgentProcess], tmp_path: Path
) -> None:
    clock = tmp_path / "faketime.rc"
    set_offset(clock, 0)
    config = write_agent_config(
        tmp_path,
        receiver.url,
        [counter_sensor("counter", 20)],
        telemetry={"interval_s": 1},
        push={"batch_size": 500, "interval_ms": 200},
    )
    agent = AgentProcess(
        config,
        env={
            "LD_PRELOAD": find_libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(clock),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
    )
    agent_processes.append(agent)
    agent.start()
    agent.wait_for_pushes(more_than=200)
    for offset in STEPS_S:
        set_offset(clock, offset)
        agent.wait_for_pushes(more_than=agent.status()["counters"]["pushed"] + 200)
    assert agent.terminate() == 0
    agent.drain(receiver)

    readings = [r for r in receiver.readings() if r["sensor"] == "counter"]
    delivery = Delivery.of(agent, receiver)
    stamps = [epoch_ms(r["timestamp"]) for r in readings]
    steps = [b - a for a, b in zip(stamps, stamps[1:]) if b < a]
    jumps_forward = sum(1 for a, b in zip(stamps, stamps[1:]) if b - a > 60_000)
    values = [r["payload"]["value"] for r in readings]

    # Analytics over the whole span, bucket by bucket, against the stored timestamps.
    expected: dict[int, list[float]] = defaultdict(list)
    for stamp, value in zip(stamps, values):
        expected[stamp // 60_000 * 60_000].append(value)
    series = receiver.get(
        "/api/analytics/series",
        device_id=DEVICE,
        sensor="counter",
        field="value",
        bucket="60s",
        start=(parse_time(min(r["timestamp"] for r in readings)) - timedelta(minutes=1))
        .isoformat()
        .replace("+00:00", "Z"),
        end=(parse_time(max(r["timestamp"] for r in readings)) + timedelta(minutes=1))
        .isoformat()
        .replace("+00:00", "Z"),
    )
    buckets = {epoch_ms(b["start"]): b for b in series["buckets"]}
    mismatched = [
        start
        for start in set(expected) | set(buckets)
        if start not in expected
        or start not in buckets
        or (buckets[start]["count"], buckets[start]["min"], buckets[start]["max"])
        != (len(expected[start]), min(expected[start]), max(expected[start]))
    ]

    latest: dict[str, Any] = {
        r["sensor"]: r for r in receiver.get("/api/readings/latest", device_id=DEVICE)["readings"]
    }["counter"]
    newest = max(readings, key=lambda r: (epoch_ms(r["timestamp"]), r["seq"]))
    node = receiver.get(f"/api/nodes/{DEVICE}")
    node_clock_behind_s = (
        parse_time(node["last_seen"]) - parse_time(node["last_heartbeat_timestamp"])
    ).total_seconds()
    report(
        "clock-step-back",
        steps=len(steps),
        step_s="/".join(str(round(step / 1000)) for step in steps),
        jumps_forward=jumps_forward,
        produced=delivery.produced,
        stored=len(delivery.stored),
        missing=len(delivery.missing),
        duplicates=delivery.duplicates,
        out_of_order=not delivery.in_order,
        analytics_buckets=len(buckets),
        analytics_mismatched=len(mismatched),
        latest_seq=latest["seq"],
        last_seq=delivery.produced,
        node_status=node["status"],
    )
    # The fault really happened: two backward steps of about 1 h and 30 min.
    assert len(steps) == 2, f"expected two backward steps, saw {steps[:5]}"
    assert abs(steps[0] / 1000 + 3600) < 120 and abs(steps[1] / 1000 + 1800) < 120, steps
    assert jumps_forward == 0
    # Identity and order are the seq's: exactly once, in order, nothing missing.
    assert delivery.stored == list(range(1, delivery.produced + 1))
    assert values == list(range(1, len(values) + 1)), "counter values out of order or lost"
    # Analytics agree with the stored readings whatever order their timestamps came in.
    assert not mismatched, f"analytics buckets disagree with the readings: {mismatched[:5]}"
    assert sum(b["count"] for b in buckets.values()) == len(readings)
    # `latest` is the newest by timestamp (docs/receiver.md): the last one before the step.
    assert latest["seq"] == newest["seq"]
    assert latest["seq"] < delivery.produced
    # The receiver keys node status on its own clock: a node whose clock is behind is online.
    assert node["status"] == "online"
    assert node_clock_behind_s > 5000

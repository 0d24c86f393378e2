"""Two receivers sharing one PostgreSQL behind one address: one is killed mid-run, no seq lost or doubled.

beam-mol-fleet-rx (which also holds the database) and beam-mol-fleet-rx2 form a pool: every
agent pushes to rx's nginx, which spreads requests over both receivers' shares (port 8443) and
steps around one that fails. Here rx's own receiver is killed (SIGKILL, then held stopped for
OUTAGE_S) while every agent keeps pushing: their readings must keep arriving, through rx2 alone,
during the outage; afterwards every agent's seqs are stored exactly once (1..n), POSTs that
were retried on rx2 deduplicated by the unique (device_id, seq).

Runs after test_partition.py (file order), on the deployed fleet; costs OUTAGE_S plus a few
seconds.
"""

from __future__ import annotations

import time
from conftest import FLEET_AGENTS, stored_seqs, wait_for

FRONT = "beam-mol-fleet-rx"
OTHER = "beam-mol-fleet-rx2"
testinfra_hosts = ["ansible://" + OTHER]  # reads go to rx2's receiver: rx's is the one killed

OUTAGE_S = 30.0
def newest(host) -> dict[str, int]:
    return {device: max(stored_seqs(host, device)) for device in FLEET_AGENTS.values()}


def test_a_killed_receiver_is_stepped_around_and_every_seq_is_stored_once(host):
    front = host.get_host("ansible://" + FRONT, ansible_inventory=host.backend.ansible_inventory)
    assert front.service("beam-receiver.service").is_running
    before = newest(host)
    killed = front.run(
        "systemctl kill --signal=SIGKILL beam-receiver.service && systemctl stop beam-receiver.service"
    )
    assert killed.rc == 0, killed.stderr
    outage_started = time.monotonic()
    try:
        assert not front.service("beam-receiver.service").is_running
        during = wait_for(
            lambda: newest(host),
            lambda now: all(now[device] >= before[device] + 10 for device in before),
            OUTAGE_S,
        )
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        at_end = newest(host)
        still_down = not front.service("beam-receiver.service").is_running
    finally:
        started = front.run("systemctl start beam-receiver.service")
    assert started.rc == 0, started.stderr
    print(
        f"\nrx's receiver down {OUTAGE_S:.0f} s; readings stored through rx2 meanwhile: "
        + ", ".join(f"{device} +{at_end[device] - before[device]}" for device in sorted(before))
    )
    assert still_down  # nothing restarted rx's receiver behind the test's back
    for device in before:
        # every agent kept delivering through the one address while rx's receiver was dead
        assert during[device] >= before[device] + 10, (device, before[device], during[device])

    after = wait_for(
        lambda: newest(host),
        lambda now: all(now[device] > at_end[device] for device in now),
        60.0,
    )
    for device in FLEET_AGENTS.values():
        seqs = stored_seqs(host, device)
        assert after[device] > at_end[device], device
        assert len(seqs) == len(set(seqs)), f"{device}: {len(seqs) - len(set(seqs))} seqs stored twice"
        assert sorted(seqs) == list(range(1, max(seqs) + 1)), f"{device}: a gap in 1..{max(seqs)}"

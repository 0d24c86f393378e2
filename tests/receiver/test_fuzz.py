"""The fuzz campaign (tests/support/fuzz_campaign.py) against a real `beam-receiver serve`.

BEAM_FUZZ_REQUESTS sets the number of requests (CI's default is below; `make fuzz` runs
10,000) and BEAM_FUZZ_SEED replays a run. It prints one summary line.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from beam_receiver.storage import Database, NewReading

from tests.support.fuzz_campaign import (
    WRITES,
    Campaign,
    per_operation,
    run_campaign,
    serve,
    summary,
    verify_database,
)
from tests.support.receiver import ReceiverProcess

FUZZ_REQUESTS = int(os.environ.get("BEAM_FUZZ_REQUESTS", "1500"))
FUZZ_SEED = int(os.environ.get("BEAM_FUZZ_SEED", str(random.randrange(2**32))))


# Generous: about 10 requests/s on an idle 2-core machine, far fewer on a busy one.
@pytest.mark.timeout(max(600, FUZZ_REQUESTS // 2))
def test_fuzz_receiver_no_5xx_no_partial_writes(tmp_path: Path) -> None:
    started = time.monotonic()
    with serve(tmp_path) as served:
        campaign = run_campaign(served, FUZZ_REQUESTS, FUZZ_SEED, progress=lambda _: None)
    verdict = verify_database(campaign)
    line = summary(campaign, verdict, time.monotonic() - started, FUZZ_SEED)
    print("\n" + line + "\n" + per_operation(campaign))
    failures = "\n\n".join(f"== {key}\n{text}" for key, text in campaign.failures.items())
    assert campaign.requests >= FUZZ_REQUESTS, line
    assert not [code for code in campaign.statuses if code >= 500], line + "\n" + failures
    assert not campaign.failures, line + "\n" + failures
    assert verdict.partial_writes == [], line
    assert verdict.integrity == "ok", line
    # The run reached storage both ways: batches stored and batches refused.
    assert campaign.ledger.accepted_total > 0, line
    assert campaign.ledger.rejected, line
    writes = sum(campaign.per_operation[label] for label in WRITES)
    assert writes * 2 > campaign.requests, line  # weighted to the write endpoints


def test_the_database_check_catches_partial_writes_and_miscounted_answers(tmp_path: Path) -> None:
    """The verdict is only worth something if it can fail: feed it a database that lies."""
    database = Database(tmp_path / "receiver.db")
    database.migrate()
    stored = NewReading("beamrider-0001", 7, "s", "t", "2026-01-01T00:00:00Z", 0, "{}")
    database.insert_readings([stored])
    database.close()
    campaign = Campaign(ReceiverProcess(tmp_path, 0))  # never started: its database only
    reading = {"device_id": "beamrider-0001", "seq": 7}
    # The batch holding seq 7 was refused, yet seq 7 is stored: a partial write.
    campaign.ledger.record({"readings": [reading, {**reading, "seq": 8}]}, 400, {})
    # A 2xx answer that says it stored two readings when only one was new.
    campaign.ledger.record({"readings": [{**reading, "seq": 9}]}, 200, {"accepted": 2})
    problems = verify_database(campaign).partial_writes
    assert any("rejected batches were stored" in problem for problem in problems), problems
    assert any("1 readings of which 1 were new" in problem for problem in problems), problems
    assert any("sum of accepted 2 != 1 rows" in problem for problem in problems), problems
    assert any("acknowledged readings are not stored" in problem for problem in problems)

"""The fuzz campaign (fuzz_campaign.py) against a real `beam-receiver serve`.

BEAM_FUZZ_REQUESTS sets the number of requests (CI's default is below; `make fuzz` runs
10,000) and BEAM_FUZZ_SEED replays a run. It prints one summary line.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import fuzz_campaign
import pytest
from fuzz_campaign import run_campaign, serve, summary, verify_database

FUZZ_REQUESTS = int(os.environ.get("BEAM_FUZZ_REQUESTS", "1500"))
FUZZ_SEED = int(os.environ.get("BEAM_FUZZ_SEED", str(random.randrange(2**32))))


@pytest.mark.timeout(max(300, FUZZ_REQUESTS // 5))
def test_fuzz_receiver_no_5xx_no_partial_writes(tmp_path: Path, unused_port: int) -> None:
    started = time.monotonic()
    with serve(tmp_path, unused_port) as served:
        campaign = run_campaign(served, FUZZ_REQUESTS, FUZZ_SEED, progress=lambda _: None)
    verdict = verify_database(campaign)
    line = summary(campaign, verdict, time.monotonic() - started, FUZZ_SEED)
    print("\n" + line)
    failures = "\n\n".join(f"== {key}\n{text}" for key, text in campaign.failures.items())
    assert campaign.requests >= FUZZ_REQUESTS, line
    assert not [code for code in campaign.statuses if code >= 500], line + "\n" + failures
    assert not campaign.failures, line + "\n" + failures
    assert verdict.partial_writes == [], line
    assert verdict.integrity == "ok", line
    # The run reached storage both ways: batches stored and batches refused.
    assert campaign.ledger.accepted_total > 0, line
    assert campaign.ledger.rejected, line
    writes = sum(campaign.per_operation[label] for label in fuzz_campaign.WRITES)
    assert writes * 2 > campaign.requests, line  # weighted to the write endpoints

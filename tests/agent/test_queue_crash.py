"""SIGKILL a process that is writing the queue: every seq it saw committed must survive."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading, utc_now

from tests.support.waiting import wait_for

# The writer enqueues batches of varying size and acknowledges the previous batch, and
# prints each result only after the call (and so the commit) has returned.
WRITER = textwrap.dedent(
    """
    import json, random, sys
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from beam_agent.queue import ReadingQueue
    from beam_agent.reading import Reading

    state, round_no = Path(sys.argv[1]), int(sys.argv[2])
    queue = ReadingQueue(state, max_readings=10_000_000)
    rng = random.Random(round_no)
    start = datetime(2026, 2, 15, tzinfo=timezone.utc)
    previous = []
    batch_no = 0
    while True:
        tag = f"r{round_no}-b{batch_no}"
        batch = [
            Reading("beamrider-0001", "crash", "virtual",
                    {"tag": tag, "i": i, "blob": "x" * rng.randrange(0, 400)},
                    start + timedelta(milliseconds=batch_no * 1000 + i))
            for i in range(rng.randrange(1, 200))
        ]
        seqs = queue.enqueue(batch)
        print(json.dumps({"tag": tag, "seqs": seqs,
                          "blobs": [len(r.payload["blob"]) for r in batch]}), flush=True)
        queue.ack(previous)
        print(json.dumps({"acked": previous}), flush=True)
        previous = seqs
        batch_no += 1
    """
)


class ReportReader:
    """Reads the writer's reports as they come, so the writer never blocks on a full pipe
    (a kill would then always land in `print`, never inside a commit)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def batches_reported(self) -> int:
        return sum('"seqs"' in line for line in list(self.lines))

    def reports(self) -> list[dict[str, Any]]:
        """Every complete line; a cut-off last line is not a report (the print may have
        been interrupted, not the commit)."""
        self.thread.join(60)
        return [json.loads(line) for line in self.lines if line.endswith("\n")]


def test_sigkill_never_loses_a_committed_seq(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(20260215)
    committed: dict[int, tuple[str, int, int]] = {}  # seq -> (tag, index, blob length)
    acked: set[int] = set()
    highest = 0
    for round_no in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state), str(round_no)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        reader = ReportReader(writer.stdout)
        wanted = rng.randrange(1, 20)
        wait_for(
            lambda: reader.batches_reported() >= wanted or writer.poll() is not None,  # noqa: B023
            60,
            "the writer's first commits",
            interval=0.01,
        )
        time.sleep(rng.uniform(0.0, 0.3))  # land the kill anywhere in the loop
        writer.send_signal(signal.SIGKILL)
        writer.wait(60)
        reports = reader.reports()
        errors = writer.stderr.read() if writer.stderr else ""
        assert writer.returncode == -signal.SIGKILL, errors
        batches = [r for r in reports if "seqs" in r]
        assert batches, f"round {round_no}: the writer reported nothing: {errors}"

        # Seqs continue after the highest ever used, across every kill.
        assert batches[0]["seqs"][0] > highest
        for report in batches:
            for index, (seq, blob) in enumerate(zip(report["seqs"], report["blobs"])):
                committed[seq] = (report["tag"], index, blob)
        for report in reports:
            acked.update(report.get("acked", ()))
        highest = max(committed)

        with sqlite3.connect(state / "queue.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {
                seq: (json.loads(payload), sent)
                for seq, payload, sent in db.execute("SELECT seq, payload, sent FROM readings")
            }
        missing = set(committed) - set(stored)
        assert not missing, f"round {round_no}: committed seqs lost: {sorted(missing)[:10]}"
        for seq, (tag, index, blob) in committed.items():
            payload, sent = stored[seq]
            assert payload == {"tag": tag, "i": index, "blob": "x" * blob}, seq
            if seq in acked:
                assert sent == 1, f"seq {seq} was acknowledged, yet is unsent again"

    queue = ReadingQueue(state, max_readings=10_000_000)
    last_seq = queue.counters()["last_seq"]
    assert last_seq >= highest
    fresh = Reading("beamrider-0001", "crash", "virtual", {"tag": "after"}, utc_now())
    assert queue.enqueue([fresh]) == [last_seq + 1]
    assert queue.stored() - queue.depth() >= len(acked)  # sent rows: at least those reported
    queue.close()

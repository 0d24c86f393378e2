"""The SQLite reading queue: seqs, the bound and its overflow policies, dead letters, export."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beam_agent.queue import SCHEMA_VERSION, QueueError, ReadingQueue
from beam_agent.reading import Reading

START = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)


def readings(count: int, sensor: str = "geiger", start: int = 0) -> list[Reading]:
    return [
        Reading(
            "beamrider-0001",
            sensor,
            "mightyohm",
            {"cpm": start + i, "usv_per_hr": 0.21, "mode": "SLOW"},
            START + timedelta(seconds=start + i),
        )
        for i in range(count)
    ]


def stored_seqs(queue: ReadingQueue) -> list[int]:
    return [reading.seq for reading in queue.export() if reading.seq is not None]


def sent_flags(state_dir: Path) -> dict[int, int]:
    with sqlite3.connect(state_dir / "queue.db") as db:
        return dict(db.execute("SELECT seq, sent FROM readings"))


# -- seqs -------------------------------------------------------------------------------


def test_seqs_start_at_one_and_readings_round_trip(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state")
    written = readings(3)
    assert queue.enqueue(written) == [1, 2, 3]
    leased = queue.lease(10)
    assert [r.seq for r in leased] == [1, 2, 3]
    for original, back in zip(written, leased):
        assert back.payload == original.payload
        assert back.timestamp == original.timestamp
        assert (back.device_id, back.sensor, back.sensor_type) == (
            original.device_id,
            original.sensor,
            original.sensor_type,
        )
    queue.close()


def test_seqs_never_reused_after_deletes_and_reopen(tmp_path: Path) -> None:
    state = tmp_path / "state"
    queue = ReadingQueue(state, max_readings=5)
    assert queue.enqueue(readings(5)) == [1, 2, 3, 4, 5]
    assert queue.dead_letter([4, 5], 400, "bad") == 2  # the highest seqs leave the table
    queue.close()

    queue = ReadingQueue(state, max_readings=5)
    assert queue.enqueue(readings(1)) == [6]
    queue.ack([1, 2, 3, 6])
    assert queue.enqueue(readings(5)) == [7, 8, 9, 10, 11]  # evicts every earlier row
    assert stored_seqs(queue) == [7, 8, 9, 10, 11]
    queue.close()

    queue = ReadingQueue(state, max_readings=5)
    assert queue.enqueue(readings(2)) == [12, 13]
    assert queue.counters()["last_seq"] == 13
    queue.close()


def test_seqs_unique_with_concurrent_writer_and_pusher(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=100_000)
    returned: list[int] = []
    acked: list[int] = []
    writing = threading.Event()
    writing.set()

    def write() -> None:
        for _ in range(40):
            returned.extend(queue.enqueue(readings(25)))
        writing.clear()

    def push() -> None:
        while writing.is_set() or queue.depth():
            batch = queue.lease(30)
            queue.ack([r.seq for r in batch if r.seq is not None])
            acked.extend(r.seq for r in batch if r.seq is not None)

    threads = [threading.Thread(target=write), threading.Thread(target=push)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert returned == list(range(1, 1001))
    assert sorted(acked) == returned  # each leased and acknowledged exactly once
    counters = queue.counters()
    assert counters["pushed"] == counters["enqueued"] == 1000
    assert queue.depth() == 0
    queue.close()


# -- lease, ack ---------------------------------------------------------------------------


def test_lease_gives_oldest_unsent_and_ack_counts_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    queue = ReadingQueue(state)
    queue.enqueue(readings(10))
    assert [r.seq for r in queue.lease(4)] == [1, 2, 3, 4]
    assert [r.seq for r in queue.lease(4)] == [1, 2, 3, 4]  # a lease marks nothing
    queue.ack([1, 2, 3, 4], duplicates=1)
    queue.ack([3, 4, 999])  # already sent or unknown: not counted again
    assert [r.seq for r in queue.lease(4)] == [5, 6, 7, 8]
    counters = queue.counters()
    assert counters["pushed"] == 4
    assert counters["duplicates_acknowledged"] == 1
    assert queue.depth() == 6
    assert sent_flags(state) == {seq: int(seq <= 4) for seq in range(1, 11)}
    assert queue.lease(1)[0].timestamp == START + timedelta(seconds=4)  # the oldest unsent
    queue.close()


def test_lease_limit_must_be_positive(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state")
    with pytest.raises(ValueError, match="lease limit"):
        queue.lease(0)
    queue.close()


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            Reading("d", "bad", "t", {"v": math.nan}, START),
            "reading 2 \\(sensor 'bad'\\) cannot be queued: Out of range float",
        ),
        (
            Reading("d", "bad", "t", {"v": 1}, datetime(2026, 1, 1)),
            "reading 2 \\(sensor 'bad'\\) cannot be queued: timestamp must be timezone-aware",
        ),
        (
            Reading("d", "bad", "t", {"v": object()}, START),
            "reading 2 \\(sensor 'bad'\\) cannot be queued: Object of type object",
        ),
    ],
)
def test_bad_reading_rejects_whole_batch(tmp_path: Path, bad: Reading, problem: str) -> None:
    queue = ReadingQueue(tmp_path / "state")
    queue.enqueue(readings(1))
    with pytest.raises(ValueError, match=problem):
        queue.enqueue([*readings(2), bad])
    assert queue.depth() == 1
    assert queue.counters()["last_seq"] == 1
    assert queue.enqueue(readings(1)) == [2]
    queue.close()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_readings": 0}, "max_readings must be at least 1"),
        ({"max_readings": "many"}, "max_readings must be an integer"),
        ({"overflow": "drop_newest"}, "overflow must be one of drop_oldest, thin"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ReadingQueue(tmp_path / "state", **kwargs)
    assert not (tmp_path / "state").exists()


# -- the bound ---------------------------------------------------------------------------


def test_drop_oldest_evicts_sent_rows_before_unsent(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=10, overflow="drop_oldest")
    queue.enqueue(readings(10))
    queue.ack([3, 4, 5])  # sent rows in the middle go first, oldest of them first
    queue.enqueue(readings(2))
    assert stored_seqs(queue) == [1, 2, 5, 6, 7, 8, 9, 10, 11, 12]
    assert queue.counters()["evicted"] == 2 and queue.counters()["dropped"] == 0
    queue.enqueue(readings(3))  # one sent row left, then the oldest unsent
    assert stored_seqs(queue) == [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    counters = queue.counters()
    assert (counters["evicted"], counters["dropped"]) == (3, 2)
    assert queue.stored() == 10 == queue.status()["stored"]
    queue.close()


def test_eviction_happens_in_chunks(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=1000)
    queue.enqueue(readings(1000))
    queue.ack(list(range(1, 1001)))
    queue.enqueue(readings(1))  # makes room for 1, frees a chunk of 1% at once
    assert queue.stored() == 991
    assert queue.counters()["evicted"] == 10
    queue.enqueue(readings(9))  # fits without another eviction
    assert queue.counters()["evicted"] == 10 and queue.stored() == 1000
    queue.close()


def test_a_batch_larger_than_the_bound_keeps_its_newest(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=10)
    assert queue.enqueue(readings(25)) == list(range(1, 26))
    assert stored_seqs(queue) == list(range(16, 26))
    assert queue.counters()["dropped"] == 15
    queue.close()


def test_a_lowered_bound_applies_on_open(tmp_path: Path) -> None:
    ReadingQueue(tmp_path / "state", max_readings=100).enqueue(readings(50))
    queue = ReadingQueue(tmp_path / "state", max_readings=20)
    assert queue.stored() == 20 and stored_seqs(queue) == list(range(31, 51))
    assert queue.counters()["dropped"] == 30
    queue.close()


def test_thin_keeps_the_span_with_even_gaps(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=1000, overflow="thin")
    queue.enqueue(readings(1000))
    queue.ack(list(range(1, 1001)))
    queue.enqueue(readings(1, start=1000))  # one chunk (10 rows) thinned from the sent rows
    kept = stored_seqs(queue)
    removed = sorted(set(range(1, 1001)) - set(kept))
    assert len(removed) == 10 and len(kept) == 991
    assert kept[0] == 1 and 1000 in kept and kept[-1] == 1001
    spacing = {b - a for a, b in zip(removed, removed[1:])}
    assert spacing <= {99, 100}, removed  # every ~100th row, spread over the whole range
    assert removed[0] in range(45, 56)  # starting half a step in, not at an end
    assert queue.counters()["evicted"] == 10 and queue.counters()["dropped"] == 0
    queue.close()


def test_thin_keeps_first_and_last_while_the_receiver_is_away(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=200, overflow="thin")
    for start in range(0, 2000, 50):
        queue.enqueue(readings(50, start=start))
        assert queue.stored() <= 200
    kept = list(queue.export())
    assert kept[0].seq == 1 and kept[-1].seq == 2000
    assert kept[0].timestamp == START and kept[-1].timestamp == START + timedelta(seconds=1999)
    counters = queue.counters()
    assert counters["dropped"] == 2000 - len(kept) == 2000 - queue.depth()
    # The history keeps its shape at a lower resolution: every tenth of the span holds a
    # fair share of what is kept, the oldest as much as the middle (none ever thinned away).
    tenths = Counter((reading.timestamp - START) // timedelta(seconds=200) for reading in kept)
    assert sorted(tenths) == list(range(10))
    assert min(tenths.values()) >= 10, tenths
    queue.close()


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(1, 30)),
        st.tuples(st.just("lease"), st.integers(1, 20)),
        st.tuples(st.just("ack"), st.integers(0, 20)),
        st.tuples(st.just("dead_letter"), st.integers(0, 5)),
    ),
    max_size=25,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    max_readings=st.integers(1, 40),
    overflow=st.sampled_from(["drop_oldest", "thin"]),
    operations=OPERATIONS,
)
@example(  # more dead letters than max_readings: the oldest go, counted (found by hypothesis)
    max_readings=1,
    overflow="drop_oldest",
    operations=[("enqueue", 1), ("lease", 1), ("dead_letter", 1)] * 2,
)
def test_bound_and_counters_hold_under_any_sequence(
    max_readings: int, overflow: str, operations: list[tuple[str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        queue = ReadingQueue(Path(directory), max_readings=max_readings, overflow=overflow)
        enqueued: list[int] = []
        acked: set[int] = set()
        dead: set[int] = set()
        leased: list[int] = []
        for operation, amount in operations:
            if operation == "enqueue":
                seqs = queue.enqueue(readings(amount))
                assert len(seqs) == amount
                assert not enqueued or seqs[0] > enqueued[-1]
                assert seqs == list(range(seqs[0], seqs[0] + amount))
                enqueued.extend(seqs)
            elif operation == "lease":
                leased = [r.seq for r in queue.lease(amount) if r.seq is not None]
            elif operation == "ack":  # the pusher acknowledges (part of) its latest lease
                part, leased = leased[:amount], leased[amount:]
                queue.ack(part)
                acked.update(part)
            else:
                part, leased = leased[:amount], leased[amount:]
                present_unsent = set(stored_unsent(queue))
                queue.dead_letter(part, 400, "rejected")
                dead.update(set(part) & present_unsent)

            present = {r.seq for r in queue.export()}
            unsent = set(stored_unsent(queue))
            gone = set(enqueued) - present - dead
            counters = queue.counters()
            assert len(present) == queue.stored() <= max_readings
            assert queue.depth() == len(unsent)
            assert counters["dropped"] == len(gone - acked)  # exactly the readings lost
            assert counters["evicted"] == len(gone & acked)
            assert counters["pushed"] == len(acked)
            assert counters["dead_lettered"] == len(dead)
            # Past max_readings dead letters, the oldest go, counted.
            kept_dead = len(queue.dead_letters())
            assert kept_dead + counters["dead_letters_evicted"] == len(dead)
            assert kept_dead <= max_readings
            assert counters["enqueued"] == len(enqueued)
        queue.close()


def stored_unsent(queue: ReadingQueue) -> list[int]:
    with sqlite3.connect(queue.path) as db:
        return [row[0] for row in db.execute("SELECT seq FROM readings WHERE sent = 0")]


def test_readings_evicted_while_in_flight_count_as_delivered_once_acked(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=10)
    queue.enqueue(readings(10))
    in_flight = [r.seq for r in queue.lease(5) if r.seq is not None]
    queue.enqueue(readings(3))  # the queue is full of unsent rows: seqs 1..3 are dropped
    assert queue.counters()["dropped"] == 3
    queue.ack(in_flight)  # ... but the receiver had them after all
    counters = queue.counters()
    assert (counters["dropped"], counters["pushed"], counters["evicted"]) == (0, 5, 3)
    assert queue.depth() == 8
    queue.close()


# -- dead letters ------------------------------------------------------------------------


def test_dead_letters_are_kept_counted_and_never_leased(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state")
    queue.enqueue(readings(6))
    batch = queue.lease(3)
    assert queue.dead_letter(batch, 400, "HTTP 400: invalid_body payload.cpm") == 3
    assert queue.dead_letter([2, 3], 400, "again") == 0  # already parked: not counted twice
    queue.ack([4])
    assert queue.dead_letter([4], 400, "sent already") == 0
    assert [r.seq for r in queue.lease(10)] == [5, 6]
    letters = queue.dead_letters()
    assert [(d["reading"].seq, d["status"], d["reason"]) for d in letters] == [
        (seq, 400, "HTTP 400: invalid_body payload.cpm") for seq in (1, 2, 3)
    ]
    assert letters[0]["reading"].payload == readings(1)[0].payload
    status = queue.status()
    assert status["counters"]["dead_lettered"] == 3 and status["dead_letters"] == 3
    assert status["last_dead_letter"]["seq"] == 3
    assert status["depth"] == 2
    with pytest.raises(ValueError, match="with a seq"):
        queue.dead_letter(readings(1), None, "never queued")
    queue.close()


def test_dead_letters_have_a_bound_too(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=5)
    for _ in range(3):
        queue.enqueue(readings(5))
        queue.dead_letter(queue.lease(5), 400, "rejected")
    counters = queue.counters()
    assert counters["dead_lettered"] == 15
    assert len(queue.dead_letters()) <= 5
    assert counters["dead_letters_evicted"] == 15 - len(queue.dead_letters())
    assert [d["reading"].seq for d in queue.dead_letters()][-1] == 15
    queue.close()


# -- export ------------------------------------------------------------------------------


def test_export_filters_and_streams_in_seq_order(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state")
    queue.enqueue(readings(1500, sensor="geiger"))
    queue.enqueue(readings(1200, sensor="env"))
    queue.ack(list(range(1, 1001)))  # sent and unsent alike are history

    everything = queue.export()
    assert next(everything).seq == 1  # an iterator, fetched page by page
    assert [r.seq for r in everything] == list(range(2, 2701))

    since = START + timedelta(seconds=1100)
    geiger = list(queue.export(since=since, sensor="geiger"))
    assert [r.seq for r in geiger] == list(range(1101, 1501))
    assert all(r.sensor == "geiger" and r.timestamp >= since for r in geiger)
    assert geiger[0].payload["cpm"] == 1100
    env = list(queue.export(sensor="env"))
    assert len(env) == 1200 and env[0].seq == 1501
    assert list(queue.export(sensor="nothing")) == []

    from_outside = ReadingQueue.read_export(tmp_path / "state", since=since)
    assert [r.seq for r in from_outside] == [*range(1101, 1501), *range(2601, 2701)]
    queue.close()


# -- status ------------------------------------------------------------------------------


def test_status_has_everything_the_command_prints(tmp_path: Path) -> None:
    state = tmp_path / "state"
    queue = ReadingQueue(state, max_readings=100)
    assert queue.status()["last_push"] is None and queue.status()["oldest_queued_age_s"] is None
    queue.enqueue(readings(5))
    queue.ack([1, 2], duplicates=1)
    at = datetime(2026, 2, 15, 19, 10, tzinfo=timezone.utc)
    queue.record_push_result(False, "HTTP 503: overloaded", at)
    queue.record_sensor_stats(
        {"geiger": {"readings": 5, "errors": 1, "last_error": "timeout", "last_read": at}}
    )
    status = queue.status()
    assert status["depth"] == 3 and status["stored"] == 5
    assert status["oldest_queued"] == "2026-02-15T19:00:02.000Z"
    assert status["oldest_queued_age_s"] > 0
    assert status["counters"] == {
        "enqueued": 5,
        "pushed": 2,
        "dropped": 0,
        "evicted": 0,
        "duplicates_acknowledged": 1,
        "dead_lettered": 0,
        "dead_letters_evicted": 0,
        "resent": 0,
        "last_seq": 5,
    }
    assert status["last_push"] == {
        "ok": False,
        "detail": "HTTP 503: overloaded",
        "at": "2026-02-15T19:10:00.000Z",
    }
    assert status["last_success_at"] is None
    assert status["sensors"] == {
        "geiger": {
            "readings": 5,
            "errors": 1,
            "last_error": "timeout",
            "last_read": "2026-02-15T19:10:00.000Z",
        }
    }
    json.dumps(status)  # `status --json` prints it as it is

    queue.record_push_result(True, "HTTP 200: delivered 3", at + timedelta(seconds=5))
    queue.record_sensor_stats({"env": {"readings": 1, "errors": 0}})  # replaces the set
    status = queue.status()
    assert status["last_push"]["ok"] is True
    assert status["last_success_at"] == "2026-02-15T19:10:05.000Z"
    assert set(status["sensors"]) == {"env"}
    queue.close()


def test_status_from_another_process_while_the_agent_writes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    queue = ReadingQueue(state)
    queue.enqueue(readings(7))
    queue.ack([1, 2])
    queue.record_sensor_stats({"geiger": {"readings": 7, "errors": 0}})
    script = (
        "import json, sys; from pathlib import Path; from beam_agent.queue import ReadingQueue;"
        "print(json.dumps(ReadingQueue.read_status(Path(sys.argv[1]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status = json.loads(result.stdout)
    assert status["depth"] == 5 == queue.depth()
    assert status["counters"] == queue.counters()
    assert status["sensors"]["geiger"]["readings"] == 7
    queue.enqueue(readings(1))  # the agent goes on writing after the reader left
    assert ReadingQueue.read_status(state)["depth"] == 6
    queue.close()


def test_read_only_open_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "never"
    with pytest.raises(FileNotFoundError, match=r"state directory .*never does not exist"):
        ReadingQueue.read_status(missing)
    with pytest.raises(FileNotFoundError):
        ReadingQueue.read_export(missing)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no queue database"):
        ReadingQueue.read_status(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    (tmp_path / "empty" / "queue.db").touch()  # the agent created it a moment ago
    with pytest.raises(FileNotFoundError, match="holds no queue yet"):
        ReadingQueue.read_status(tmp_path / "empty")


# -- schema ------------------------------------------------------------------------------


def test_schema_version_is_recorded_and_checked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ReadingQueue(state).close()
    with sqlite3.connect(state / "queue.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueError, match="newer than this beam-agent understands"):
        ReadingQueue(state)
    with pytest.raises(QueueError, match="upgrade beam-agent"):
        ReadingQueue.read_status(state)


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "queue.db") as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(QueueError, match="not a beam-agent queue"):
        ReadingQueue(state)


def test_resend_requeues_dead_letters_with_their_seqs_and_a_running_agent_sees_them(
    tmp_path: Path,
) -> None:
    """`beam-agent resend` is another process writing the agent's file: the running agent's
    in-memory counts follow (data_version), and the readings go out with their old seqs."""
    agent = ReadingQueue(tmp_path / "state", max_readings=100)
    agent.enqueue(readings(10))
    agent.dead_letter([1, 2, 3], 404, "HTTP 404: not_found")
    agent.dead_letter([6, 7], 400, "HTTP 400: invalid_body")
    assert agent.depth() == 5
    groups = ReadingQueue.read_dead_letters(tmp_path / "state")
    assert [(g["first_seq"], g["last_seq"], g["count"], g["status"]) for g in groups] == [
        (1, 3, 3, 404),
        (6, 7, 2, 400),
    ]

    with ReadingQueue(tmp_path / "state", max_readings=100) as cli:
        assert cli.resend(status=404) == ([1, 2, 3], 0)
    assert agent.depth() == 8  # seen from the agent's own connection
    assert [r.seq for r in agent.lease(100)] == [1, 2, 3, 4, 5, 8, 9, 10]
    assert [letter["reading"].seq for letter in agent.dead_letters()] == [6, 7]
    status = agent.status()
    assert status["counters"]["resent"] == 3 and status["dead_letters"] == 2
    assert status["counters"]["dead_lettered"] == 5  # ever parked: history, not undone
    agent.ack([1, 2, 3, 4, 5, 8, 9, 10])
    assert agent.depth() == 0
    agent.close()


def test_resend_never_drops_undelivered_readings_to_make_room(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_readings=10)
    queue.enqueue(readings(10))
    queue.dead_letter([1, 2, 3, 4, 5, 6], 404, "HTTP 404")
    queue.enqueue(readings(4))  # 4 parked-free, 8 undelivered rows now: room for 2
    seqs, left = queue.resend()
    assert (seqs, left) == ([1, 2], 4)
    assert queue.depth() == 10 and queue.counters()["dropped"] == 0
    queue.ack([r.seq for r in queue.lease(100) if r.seq is not None])
    assert queue.resend() == ([3, 4, 5, 6], 0)  # room again: delivered rows make way
    assert queue.counters()["dropped"] == 0 and queue.stored() <= 10


def test_the_running_queues_status_counts_agree_with_the_file(tmp_path: Path) -> None:
    # status() (the heartbeat's) uses the in-memory counts, not COUNT(*) over the history;
    # another process counts the rows; both must say the same after any mix of operations.
    queue = ReadingQueue(tmp_path / "state", max_readings=50, overflow="thin")
    queue.enqueue(readings(40))
    queue.ack([r.seq for r in queue.lease(15) if r.seq is not None])
    queue.dead_letter([r.seq for r in queue.lease(5) if r.seq is not None], 400, "bad")
    queue.enqueue(readings(30))  # over the bound: evictions
    mine, theirs = queue.status(), ReadingQueue.read_status(tmp_path / "state")
    for key in ("depth", "stored", "dead_letters", "oldest_queued", "counters"):
        assert mine[key] == theirs[key], key
    assert (mine["depth"], mine["stored"], mine["dead_letters"]) == (
        queue.depth(),
        queue.stored(),
        5,
    )
    queue.close()

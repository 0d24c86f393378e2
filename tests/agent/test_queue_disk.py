"""The queue's disk bounds, `max_bytes` and `min_free_bytes`, on real SQLite files: the same
overflow policies and the same exact counts as the row bound."""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from beam_agent.config import ConfigError, load_config
from beam_agent.queue import ReadingQueue, disk_free
from beam_agent.reading import Reading

from tests.support.agent import write_agent_config

START = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
KIB = 1024
MIB = 1024 * KIB
PAD = "x" * 200  # about 300 bytes a row: enough rows to fill pages quickly


def readings(count: int, start: int = 0) -> list[Reading]:
    return [
        Reading(
            "beamrider-0001",
            "geiger",
            "mightyohm",
            {"cpm": start + i, "note": PAD},
            START + timedelta(seconds=start + i),
        )
        for i in range(count)
    ]


def seqs(queue: ReadingQueue) -> list[int]:
    return [r.seq for r in queue.export() if r.seq is not None]


def files_bytes(state_dir: Path) -> int:
    """What the queue takes on disk: the database, its write-ahead log and shared memory."""
    return sum(path.stat().st_size for path in state_dir.glob("queue.db*"))


def check_counts(
    queue: ReadingQueue, enqueued: int, acked: set[int], dead: frozenset[int] = frozenset()
) -> None:
    """Every reading is stored, delivered, dead-lettered or counted as dropped: exactly,
    none twice; dead letters are kept or counted as evicted."""
    counters = queue.counters()
    present = set(seqs(queue))
    gone = set(range(1, enqueued + 1)) - present - dead
    assert counters["enqueued"] == enqueued
    assert counters["dropped"] == len(gone - acked)
    assert counters["evicted"] == len(gone & acked)
    assert queue.stored() == len(present)
    kept_dead = {d["reading"].seq for d in queue.dead_letters()}
    assert counters["dead_letters_evicted"] + len(kept_dead) == counters["dead_lettered"]


@pytest.mark.parametrize("overflow", ["drop_oldest", "thin"])
def test_max_bytes_holds_with_exact_counts(tmp_path: Path, overflow: str) -> None:
    state = tmp_path / "state"
    queue = ReadingQueue(state, overflow=overflow, max_bytes=256 * KIB)
    for start in range(0, 6000, 200):  # about 1.8 MB of readings into 256 KiB
        queue.enqueue(readings(200, start))
        with queue.lock:
            assert queue.used_bytes() <= 256 * KIB
        check_counts(queue, start + 200, set())
    kept = seqs(queue)
    assert 300 < len(kept) < 1000, len(kept)  # the bound bit, and did not empty the queue
    assert kept[-1] == 6000  # the newest reading is always kept
    if overflow == "drop_oldest":
        assert kept == list(range(kept[0], 6001))  # a contiguous tail
    else:
        assert kept[0] == 1  # thinning keeps the whole span
    # Freed pages are reused: the file stops at about the bound plus one write batch.
    queue.close()
    assert files_bytes(state) <= 256 * KIB + 200 * KIB


def test_sent_rows_then_dead_letters_go_before_undelivered_ones(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state", max_bytes=128 * KIB)
    queue.enqueue(readings(200))
    queue.ack(list(range(1, 101)))
    queue.dead_letter(list(range(101, 121)), 400, "rejected")
    with queue.lock:
        used = queue.used_bytes()
    assert used <= 128 * KIB
    queue.enqueue(readings(150, 200))  # over the bound: the 100 sent rows go first
    counters = queue.counters()
    assert counters["evicted"] > 0 and counters["dropped"] == 0
    assert counters["dead_letters_evicted"] == 0
    queue.enqueue(readings(300, 350))  # no sent rows left: dead letters, then unsent
    counters = queue.counters()
    assert counters["evicted"] == 100
    assert counters["dead_letters_evicted"] == 20 and queue.dead_letters() == []
    assert counters["dropped"] > 0
    check_counts(queue, 650, set(range(1, 101)), frozenset(range(101, 121)))
    queue.close()


def test_random_operations_keep_the_bound_and_the_counts(tmp_path: Path) -> None:
    rng = random.Random(17)
    for overflow in ("drop_oldest", "thin"):
        queue = ReadingQueue(tmp_path / overflow, overflow=overflow, max_bytes=96 * KIB)
        enqueued, acked, leased = 0, set(), []
        for _ in range(120):
            operation = rng.choice(["enqueue", "enqueue", "lease", "ack", "dead_letter"])
            if operation == "enqueue":
                count = rng.randint(1, 80)
                queue.enqueue(readings(count, enqueued))
                enqueued += count
            elif operation == "lease":
                leased = [r.seq for r in queue.lease(rng.randint(1, 60))]
            elif operation == "ack":
                part, leased = leased[: rng.randint(0, 40)], leased[40:]
                queue.ack(part)
                acked.update(part)
            else:
                part, leased = leased[: rng.randint(0, 5)], leased[5:]
                queue.dead_letter(part, 400, "rejected")
            with queue.lock:
                assert queue.used_bytes() <= 96 * KIB
            counters = queue.counters()
            present = set(seqs(queue))
            dead = {s for s in range(1, enqueued + 1) if s not in present} - set(acked)
            # Dead letters may be evicted by the bound too: then they are counted there.
            assert counters["dropped"] + counters["dead_lettered"] == len(dead)
            assert counters["pushed"] == len(acked)
            assert counters["enqueued"] == enqueued
        assert counters["dropped"] > 0  # the bound was reached
        queue.close()


def test_a_lowered_byte_bound_applies_on_open(tmp_path: Path) -> None:
    ReadingQueue(tmp_path / "state").enqueue(readings(2000))
    queue = ReadingQueue(tmp_path / "state", max_bytes=64 * KIB)
    with queue.lock:
        assert queue.used_bytes() <= 64 * KIB
    kept = seqs(queue)
    assert kept[-1] == 2000 and queue.counters()["dropped"] == 2000 - len(kept) > 0
    queue.close()


def test_min_free_bytes_against_the_real_disk(tmp_path: Path) -> None:
    # The real file system: asking for more free space than the disk has keeps nothing
    # (everything counted as dropped); asking for a byte keeps everything.
    greedy = ReadingQueue(tmp_path / "greedy", min_free_bytes=disk_free(tmp_path) + 2**40)
    greedy.enqueue(readings(100))
    assert greedy.stored() == 0 and greedy.counters()["dropped"] == 100
    greedy.close()
    modest = ReadingQueue(tmp_path / "modest", min_free_bytes=1)
    modest.enqueue(readings(100))
    assert modest.stored() == 100 and modest.counters()["dropped"] == 0
    modest.close()


class SmallDisk:
    """A disk of `capacity` bytes holding only the queue's real files: what is free is the
    capacity less their real sizes, read from the file system after every write."""

    def __init__(self, state_dir: Path, capacity: int) -> None:
        self.state_dir = state_dir
        self.capacity = capacity

    def __call__(self, path: Path) -> int:
        assert path == self.state_dir
        return self.capacity - files_bytes(self.state_dir)


@pytest.mark.parametrize("overflow", ["drop_oldest", "thin"])
def test_min_free_bytes_keeps_a_small_disk_from_filling(tmp_path: Path, overflow: str) -> None:
    state = tmp_path / "state"
    disk = SmallDisk(state, capacity=6 * MIB)
    queue = ReadingQueue(state, overflow=overflow, min_free_bytes=2 * MIB, free_space=disk)
    lowest = disk.capacity
    for start in range(0, 30_000, 500):  # about 9 MB of readings onto a 6 MiB disk
        queue.enqueue(readings(500, start))
        lowest = min(lowest, disk(state))
        check_counts(queue, start + 500, set())
    # Free space dips below the mark by at most what one transaction adds to the log (the
    # batch, and the pages an eviction rewrites); with a disk bound the log is cut back to
    # 1 MiB at each checkpoint. Measured: about 0.2 MiB (drop_oldest), 0.8 MiB (thin).
    assert lowest >= 2 * MIB - MIB, lowest
    # The queue fills what it may (about 9,900 readings here) and does not empty itself:
    # thinning frees pages in runs of neighbouring rows, not one row in every page.
    assert queue.counters()["dropped"] > 0 and queue.stored() > 4000
    queue.close()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_bytes": -1}, "max_bytes must be at least 0"),
        ({"max_bytes": "1M"}, "max_bytes must be an integer"),
        ({"min_free_bytes": -5}, "min_free_bytes must be at least 0"),
        ({"min_free_bytes": True}, "min_free_bytes must be an integer"),
    ],
)
def test_bad_disk_bounds_are_named(tmp_path: Path, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ReadingQueue(tmp_path / "state", **kwargs)


def test_config_keys(tmp_path: Path) -> None:
    config = write_agent_config(
        tmp_path, "http://127.0.0.1:9", queue={"max_bytes": 10_000_000, "min_free_bytes": 5}
    )
    loaded = load_config(config).queue
    assert (loaded.max_bytes, loaded.min_free_bytes) == (10_000_000, 5)
    assert load_config(write_agent_config(tmp_path, "http://x", name="d.toml")).queue.max_bytes == 0
    bad = write_agent_config(
        tmp_path,
        "http://127.0.0.1:9",
        name="bad.toml",
        queue={"max_bytes": -1, "min_free_bytes": "1G"},
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert caught.value.lines() == [
        f"{bad}: queue.max_bytes: must be at least 0, got -1",
        f"{bad}: queue.min_free_bytes: must be an integer, got '1G'",
    ]


def test_the_write_ahead_log_is_cut_back_after_a_checkpoint(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "state")
    with sqlite3.connect(queue.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with queue.lock:
        assert queue.conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 4 * MIB
    queue.close()
    bounded = ReadingQueue(tmp_path / "bounded", max_bytes=10 * MIB)
    with bounded.lock:  # with a disk bound the log is checkpointed and cut back sooner
        assert bounded.conn.execute("PRAGMA journal_size_limit").fetchone()[0] == MIB
        assert bounded.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 250
    bounded.close()

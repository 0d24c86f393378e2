"""The durable, bounded reading queue: a SQLite file in the state directory.

Why SQLite in WAL mode with synchronous=FULL: a reading gets its seq when its transaction
commits, and a commit must survive a power cut. If a committed seq could be rolled back, the
agent would hand the same seq to a new reading and the receiver would drop that reading as a
duplicate of the old one. The seq is the table's INTEGER PRIMARY KEY AUTOINCREMENT, so SQLite
itself records the largest seq ever used and never reuses one, even after rows are deleted.

Readings stay after they are delivered (`sent = 1`): they are the history `beam-agent export`
writes out. `max_readings` bounds every stored reading. When an insert would exceed it, sent
rows are evicted first (nothing is lost, the receiver has them, counted as `evicted`); only
when none are left are unsent rows removed (readings that will never be delivered, counted
as `dropped`). Eviction happens in chunks of about 1% of the bound so that it is not paid on
every insert. Which rows go is the overflow policy: `drop_oldest`, or `thin`, which takes
rows evenly across the whole span (densest stretches first) so that the history keeps its
shape, first and last reading included, at a lower resolution.

The disk can bound the store too: `max_bytes` caps the database's used pages, and
`min_free_bytes` keeps that much of the file system free (both off at 0). After each write
the queue measures itself (page_count - freelist_count) and, while it is over the tighter of
the two, evicts in the same order and with the same policy as for `max_readings`: sent rows,
then dead letters (the receiver refused them for good), then unsent rows, each counted as
evicted, dead_letters_evicted or dropped. Freed pages go to SQLite's freelist and are reused,
so the file stops growing at about the bound plus one write batch; it is never shrunk.

One connection guarded by a lock serves the agent's threads; `beam-agent status` and
`export` open the same file read-only from another process (`read_status`, `read_export`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Union

from beam_agent.reading import Reading, format_timestamp, parse_timestamp, utc_now

log = logging.getLogger(__name__)

DB_NAME = "queue.db"
SCHEMA_VERSION = 1
OVERFLOW_POLICIES = ("drop_oldest", "thin")
COUNTER_NAMES = (
    "enqueued",
    "pushed",
    "dropped",
    "evicted",
    "duplicates_acknowledged",
    "dead_lettered",
    "dead_letters_evicted",
    "resent",
)
EXPORT_PAGE = 1000
BUSY_TIMEOUT_S = 30.0
# The write-ahead log is cut back to this after a checkpoint, so that a disk bound is not
# undone by a log that once grew large and kept its size. With a disk bound the log is
# checkpointed (and cut back) at a quarter of SQLite's default, so that on a small disk it
# does not take the room the readings should have.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
BOUNDED_WAL_PAGES = 250
BOUNDED_WAL_SIZE_LIMIT = 1024 * 1024


def disk_free(path: Path) -> int:
    """Bytes an unprivileged process can still write on the file system holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


SCHEMA = """
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    sensor TEXT NOT NULL,
    sensor_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1))
);
CREATE INDEX readings_sent_seq ON readings (sent, seq);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    sensor TEXT NOT NULL,
    sensor_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL,
    dead_lettered_at TEXT NOT NULL
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sensor_stats (
    sensor TEXT PRIMARY KEY,
    stats TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

READING_COLUMNS = "seq, device_id, sensor, sensor_type, payload, timestamp"
# One encoder for every payload: json.dumps with options builds a new one per call.
encode_payload = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


class QueueError(Exception):
    """The queue file cannot be used as it is (newer schema, not a queue, bad settings)."""


def database_path(state_dir: Path) -> Path:
    return Path(state_dir) / DB_NAME


def open_read_only(state_dir: Path) -> sqlite3.Connection:
    """Open an existing queue for reading; creates nothing, so a wrong path fails clearly."""
    path = database_path(state_dir)
    if not Path(state_dir).is_dir():
        raise FileNotFoundError(f"state directory {state_dir} does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"no queue database {path} (has `beam-agent run` used this state_dir yet?)"
        )
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
    )
    try:
        if check_schema(conn, path) == 0:  # created a moment ago, tables not committed yet
            raise FileNotFoundError(f"{path} holds no queue yet (is the agent just starting?)")
    except BaseException:
        conn.close()
        raise
    return conn


def check_schema(conn: sqlite3.Connection, path: Path) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise QueueError(
            f"{path} has queue schema version {version}, newer than this beam-agent "
            f"understands ({SCHEMA_VERSION}); upgrade beam-agent"
        )
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
        if tables[0]:
            raise QueueError(f"{path} is an SQLite file but not a beam-agent queue")
    return version


def reading_row(index: int, reading: Reading) -> tuple[str, str, str, str, str]:
    """The stored columns of one reading; bad input fails here, before anything is written."""
    try:
        if not isinstance(reading.payload, dict):
            raise ValueError(f"payload must be an object, not {type(reading.payload).__name__}")
        payload = encode_payload(reading.payload)
        timestamp = format_timestamp(reading.timestamp)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"reading {index} (sensor {getattr(reading, 'sensor', '?')!r}) cannot be queued: {exc}"
        ) from exc
    return reading.device_id, reading.sensor, reading.sensor_type, payload, timestamp


def row_reading(row: Sequence[Any]) -> Reading:
    seq, device_id, sensor, sensor_type, payload, timestamp = row
    return Reading(
        device_id=device_id,
        sensor=sensor,
        sensor_type=sensor_type,
        payload=json.loads(payload),
        timestamp=parse_timestamp(timestamp),
        seq=seq,
    )


def json_value(value: Any) -> Any:
    """json.dumps `default`: sensor statistics may carry datetimes."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def iter_readings(
    conn: sqlite3.Connection, since: Optional[datetime], sensor: Optional[str]
) -> Iterator[Reading]:
    """Stored readings in seq order, a page at a time, so export never holds the whole store
    in memory nor a read transaction open for the whole export (which would stall WAL
    checkpoints of the running agent)."""
    conditions = ["seq > ?"]
    filters: list[Any] = []
    if since is not None:
        conditions.append("timestamp >= ?")  # fixed-width RFC 3339 text sorts as time does
        filters.append(format_timestamp(since))
    if sensor is not None:
        conditions.append("sensor = ?")
        filters.append(sensor)
    sql = (
        f"SELECT {READING_COLUMNS} FROM readings WHERE {' AND '.join(conditions)} "
        f"ORDER BY seq LIMIT {EXPORT_PAGE}"
    )
    after = 0
    while True:
        rows = conn.execute(sql, [after, *filters]).fetchall()
        for row in rows:
            yield row_reading(row)
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1][0]


def read_counters(conn: sqlite3.Connection) -> dict[str, int]:
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    counters.update(conn.execute("SELECT name, value FROM counters").fetchall())
    counters["last_seq"] = read_last_seq(conn)
    return counters


def read_last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
    return int(row[0]) if row else 0


def read_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def read_status(
    conn: sqlite3.Connection,
    now: Optional[datetime] = None,
    counts: Optional[tuple[int, int, int]] = None,
) -> dict[str, Any]:
    """Everything `beam-agent status` shows, from the file alone (works from any process).

    `counts` (depth, stored, dead letters) are the running queue's own: with a full history
    the COUNT(*)s scan a million rows, which every heartbeat would pay for.
    """
    now = now or utc_now()
    conn.execute("BEGIN")  # one snapshot, so the numbers agree with each other
    try:
        if counts is None:
            depth = conn.execute("SELECT count(*) FROM readings WHERE sent = 0").fetchone()[0]
            stored = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
            dead_letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        else:
            depth, stored, dead_letters = counts
        oldest = conn.execute(
            "SELECT timestamp FROM readings WHERE sent = 0 ORDER BY seq LIMIT 1"
        ).fetchone()
        last_dead = conn.execute(
            "SELECT seq, status, reason, dead_lettered_at FROM dead_letters "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        counters = read_counters(conn)
        last_push = read_meta(conn, "last_push")
        last_success = read_meta(conn, "last_success_at")
        sensors = {
            name: json.loads(stats)
            for name, stats in conn.execute("SELECT sensor, stats FROM sensor_stats ORDER BY 1")
        }
    finally:
        conn.execute("COMMIT")
    oldest_age = None
    if oldest is not None:
        oldest_age = max(0.0, (now - parse_timestamp(oldest[0])).total_seconds())
    return {
        "depth": depth,
        "stored": stored,
        "oldest_queued": oldest[0] if oldest else None,
        "oldest_queued_age_s": oldest_age,
        "counters": counters,
        "last_push": last_push,
        "config_error": config_error(last_push),
        "last_success_at": last_success,
        "dead_letters": dead_letters,
        "last_dead_letter": (
            dict(zip(("seq", "status", "reason", "at"), last_dead)) if last_dead else None
        ),
        "sensors": sensors,
    }


def config_error(last_push: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """The last push's configuration error (a 3xx, 404 or 405: api_url does not lead to the
    receiver's endpoints), or None; `status` and the heartbeat show it."""
    if not last_push or last_push.get("failure") != "config":
        return None
    return {
        "status": last_push.get("status"),
        "message": last_push.get("detail"),
        "at": last_push.get("at"),
    }


# Dead letters in runs of consecutive seqs with one status and reason (gaps and islands).
DEAD_LETTER_GROUPS = """
SELECT min(seq), max(seq), count(*), status, reason, min(dead_lettered_at),
    max(dead_lettered_at)
FROM (
    SELECT seq, status, reason, dead_lettered_at,
        seq - ROW_NUMBER() OVER (PARTITION BY status, reason ORDER BY seq) AS run
    FROM dead_letters
) GROUP BY status, reason, run ORDER BY min(seq)
"""


def read_dead_letter_groups(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """What `beam-agent dead-letters` lists: one entry per run of consecutive seqs parked
    for the same reason, oldest seq first."""
    keys = ("first_seq", "last_seq", "count", "status", "reason", "first_at", "last_at")
    return [dict(zip(keys, row)) for row in conn.execute(DEAD_LETTER_GROUPS)]


# Thinning works on one class of rows (sent or unsent) at a time. Its seq range, which is
# arrival order and so stands for time, is cut into equal slices; `thinning_plan` decides how
# many rows each slice gives up, and THIN_PICK spreads those evenly inside the slice. The
# first and last rows are never candidates, so the span of the history stays.
THIN_SLICES = """
SELECT ((seq - :first) * :slices) / :span AS slice, count(*)
FROM readings WHERE sent = :sent GROUP BY slice ORDER BY slice
"""
# `pos` counts candidates in seq order; minus the slice's first candidate position it is the
# rank inside the slice, and the rank goes where floor((rank * take + size/2) / size) steps
# up: every size/take-th candidate, starting half a step in.
THIN_PICK = """
SELECT c.seq FROM (
    SELECT seq, ((seq - :first) * :slices) / :span AS slice,
        ROW_NUMBER() OVER (ORDER BY seq) - 1 AS pos
    FROM readings WHERE sent = :sent AND seq != :first AND seq != :last
) AS c JOIN temp.thin_plan AS p ON p.slice = c.slice
WHERE ((c.pos - p.start + 1) * p.take + p.size / 2) / p.size
    > ((c.pos - p.start) * p.take + p.size / 2) / p.size
"""
OLDEST = "SELECT seq FROM readings WHERE sent = ? ORDER BY seq LIMIT ?"
RUN = "SELECT seq FROM readings WHERE sent = ? AND seq >= ? ORDER BY seq LIMIT ?"


def thinning_plan(rows: Sequence[int], candidates: Sequence[int], count: int) -> list[int]:
    """How many rows each slice gives up, `count` in all (fewer only if slices run dry).

    The aim is an even history: after thinning each slice should hold the average. Slices
    give up rows in proportion to how far they are above it, so dense recent history loses
    most, and old history that is denser than the rest is evened out too, instead of the old
    parts getting ever sparser (every-k-th-row thinning repeated) or never thinned at all.
    `rows` counts each slice's rows, `candidates` those that may go (not the first or last).
    """
    # Integer arithmetic throughout (scaled by the number of slices): equal slices must tie
    # exactly, or an even history would not be thinned evenly.
    slices = len(rows)
    target = sum(rows) - count  # the average after thinning, times `slices`
    excess = [min(c * slices, max(0, n * slices - target)) for n, c in zip(rows, candidates)]
    total = sum(excess)
    if total <= 0:
        return [0] * slices
    wanted = min(count, total // slices)
    plan = [wanted * e // total for e in excess]
    # The largest remainders round up; among equal ones, evenly spread picks (so that
    # thinning an even history removes every k-th row, not a run at its start).
    leftover = wanted - sum(plan)
    ties: dict[int, list[int]] = {}
    for i, e in enumerate(excess):
        remainder = wanted * e % total
        if remainder:
            ties.setdefault(remainder, []).append(i)
    for remainder in sorted(ties, reverse=True):
        if leftover <= 0:
            break
        members = ties[remainder]
        take = min(leftover, len(members))
        for j in range(take):
            plan[members[(2 * j + 1) * len(members) // (2 * take)]] += 1
        leftover -= take
    return plan


class ReadingQueue:
    """The agent's store of readings: seq assignment, bound, lease/ack, dead letters, counters."""

    def __init__(
        self,
        state_dir: Path,
        max_readings: int = 1_000_000,
        overflow: str = "drop_oldest",
        max_bytes: int = 0,
        min_free_bytes: int = 0,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        for name, value, least in (
            ("max_readings", max_readings, 1),
            ("max_bytes", max_bytes, 0),
            ("min_free_bytes", min_free_bytes, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, not {value!r}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}"
            )
        self.state_dir = Path(state_dir)
        self.path = database_path(self.state_dir)
        self.max_readings = max_readings
        self.overflow = overflow
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.free_space = free_space  # a parameter so tests can stand in a small disk
        self.bound = "max_readings"  # which bound the eviction under way serves, for the log
        self.chunk = max(1, max_readings // 100)
        self.lock = threading.Lock()
        # Set after each enqueue: an idle pusher sleeps on it instead of polling the store.
        self.arrived = threading.Event()
        # Row counts kept in memory so that enqueue never runs COUNT(*).
        self.rows = self.unsent = self.dead_letter_rows = 0
        self.seen_version = -1  # SQLite's data_version when the counts were last right
        # Seqs handed out by the latest lease, and those of them evicted while in flight:
        # if they are then acknowledged, they were delivered after all, not dropped.
        self.in_flight: set[int] = set()
        self.evicted_in_flight: set[int] = set()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._prepare()
        except BaseException:
            self.conn.close()
            raise

    # -- opening ------------------------------------------------------------------------

    def _prepare(self) -> None:
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("%s: WAL journal mode unavailable (got %s)", self.path, mode)
        self.conn.execute("PRAGMA synchronous=FULL")
        if self.max_bytes or self.min_free_bytes:
            self.conn.execute(f"PRAGMA wal_autocheckpoint={BOUNDED_WAL_PAGES}")
            self.conn.execute(f"PRAGMA journal_size_limit={BOUNDED_WAL_SIZE_LIMIT}")
        else:
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._transaction():
            version = check_schema(self.conn, self.path)
            if version == 0:
                self._create_schema()
        count = self.conn.execute
        self.rows = count("SELECT count(*) FROM readings").fetchone()[0]
        self.unsent = count("SELECT count(*) FROM readings WHERE sent = 0").fetchone()[0]
        self.dead_letter_rows = count("SELECT count(*) FROM dead_letters").fetchone()[0]
        self.seen_version = self._data_version()
        # Counters added by later releases, for a queue made before them.
        self.conn.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
            [(n,) for n in COUNTER_NAMES],
        )
        if self.rows > self.max_readings:  # the bound was lowered since the last run
            with self._transaction():
                self._evict(self.rows - self.max_readings)
        if self.max_bytes or self.min_free_bytes:  # so may a disk bound have been
            with self._transaction():
                self._bound_bytes()

    def _create_schema(self) -> None:
        # executescript would COMMIT our transaction; run the statements one by one instead.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, 0)", [(n,) for n in COUNTER_NAMES]
        )
        self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def read_status(cls, state_dir: Path) -> dict[str, Any]:
        """`status` from another process while the agent runs; raises FileNotFoundError."""
        conn = open_read_only(state_dir)
        try:
            return read_status(conn)
        finally:
            conn.close()

    @classmethod
    def read_dead_letters(cls, state_dir: Path) -> list[dict[str, Any]]:
        """`dead-letters` from another process; raises FileNotFoundError."""
        conn = open_read_only(state_dir)
        try:
            return read_dead_letter_groups(conn)
        finally:
            conn.close()

    @classmethod
    def read_export(
        cls, state_dir: Path, since: Optional[datetime] = None, sensor: Optional[str] = None
    ) -> Iterator[Reading]:
        """`export` from another process; the file is opened (and checked) before returning."""
        conn = open_read_only(state_dir)
        return _closing_iter(conn, iter_readings(conn, since, sensor))

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT; on failure the file and the in-memory counts roll back
        together, so the counts never drift from the rows."""
        saved = (
            self.rows,
            self.unsent,
            self.dead_letter_rows,
            set(self.in_flight),
            set(self.evicted_in_flight),
        )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.seen_version = -1  # counts restored below may predate a recount: redo it
            (
                self.rows,
                self.unsent,
                self.dead_letter_rows,
                self.in_flight,
                self.evicted_in_flight,
            ) = saved
            raise

    def _count(self, **increments: int) -> None:
        self.conn.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            [(value, name) for name, value in increments.items() if value],
        )

    # -- the write path -----------------------------------------------------------------

    def enqueue(self, readings: Sequence[Reading]) -> list[int]:
        """Store readings in one transaction and return their seqs (the readings' own seq is
        ignored: the queue assigns it). Nothing is stored if any reading is invalid."""
        rows = [reading_row(i, reading) for i, reading in enumerate(readings)]
        if not rows:
            return []
        with self.lock, self._transaction():
            self._sync_counts()
            first = read_last_seq(self.conn) + 1
            # A batch larger than the bound is written in slices, each making room first, so
            # the bound holds at every step (the batch's earliest readings are dropped).
            for start in range(0, len(rows), self.max_readings):
                part = rows[start : start + self.max_readings]
                self._evict(self.rows + len(part) - self.max_readings)
                seq = first + start
                self.conn.executemany(
                    "INSERT INTO readings "
                    "(seq, device_id, sensor, sensor_type, payload, timestamp) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(seq + i, *row) for i, row in enumerate(part)],
                )
                self.rows += len(part)
                self.unsent += len(part)
            self._bound_bytes()
            self._count(enqueued=len(rows))
        self.arrived.set()
        return list(range(first, first + len(rows)))

    def wake(self) -> None:
        """Wake whoever waits on `arrived` (a stopping agent's idle pusher)."""
        self.arrived.set()

    def _evict(self, excess: int) -> None:
        """Free at least `excess` rows (in chunks): sent rows first, unsent only when no
        sent rows are left. Runs inside the caller's transaction."""
        if excess <= 0:
            return
        sent = self.rows - self.unsent
        if sent >= excess:
            self._delete(1, min(sent, max(excess, self.chunk)))
            return
        if sent:
            self._delete(1, sent)
        self._delete(0, min(self.unsent, max(excess - sent, self.chunk)))

    # -- the disk bound -----------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of the database in use: its pages less those on the freelist (reusable).
        Inside a write transaction this includes the transaction's own changes."""
        page_size, pages, free = (
            self.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_size", "page_count", "freelist_count")
        )
        return int(page_size * (pages - free))

    def byte_limit(self) -> Optional[int]:
        """How many bytes the database may use now: `max_bytes`, and what keeps
        `min_free_bytes` free; None: no bound.

        The file's free pages are room that takes no more disk. Pages past the end of the
        file are not: in WAL mode new pages live in the log until a checkpoint writes them
        into the file, so the disk has not paid for them yet. Hence the file's size on disk,
        not the page count, where the page count is larger.
        """
        limits = [self.max_bytes] if self.max_bytes else []
        if self.min_free_bytes:
            page_size, pages = (
                self.conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_size", "page_count")
            )
            on_disk = min(page_size * pages, self.path.stat().st_size)
            limits.append(on_disk + self.free_space(self.state_dir) - self.min_free_bytes)
        return min(limits) if limits else None

    def _bound_bytes(self) -> None:
        """Evict until the database uses no more than `byte_limit()`: sent rows, then dead
        letters, then unsent rows, by the overflow policy. Runs inside the caller's
        transaction. SQLite frees a page only when it empties (or falls under a third full
        and is merged), so after a round that freed nothing the next one takes twice as much."""
        limit = self.byte_limit()
        if limit is None:
            return
        self.bound = "max_bytes" if limit == self.max_bytes else "min_free_bytes"
        take = 0
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            used = self.used_bytes()
            while used > limit and self.rows + self.dead_letter_rows:
                stored = self.rows + self.dead_letter_rows
                share = -(-(used - limit) * stored // used)  # rows that hold the excess
                take = max(share, stored // 100, 2 * take, 1)
                # Two pages' worth of rows: a run that long empties at least one page.
                run = 2 * -(-stored * page_size // used)
                sent = self.rows - self.unsent
                if sent:
                    self._delete(1, min(sent, take), run)
                elif self.dead_letter_rows:
                    self._evict_dead_letters(min(self.dead_letter_rows, take))
                else:
                    self._delete(0, min(self.unsent, take), run)
                before, used = used, self.used_bytes()
                if used < before:
                    take = 0
        finally:
            self.bound = "max_readings"

    def _delete(self, sent: int, count: int, run: int = 1) -> None:
        seqs: list[int] = []
        while len(seqs) < count:
            victims = self._victims(sent, count - len(seqs), run)
            self.conn.executemany("DELETE FROM readings WHERE seq = ?", [(s,) for s in victims])
            seqs.extend(victims)
        self.rows -= len(seqs)
        if sent:
            self._count(evicted=len(seqs))
            return
        self.unsent -= len(seqs)
        self.evicted_in_flight.update(self.in_flight.intersection(seqs))
        self._count(dropped=len(seqs))
        log.warning(
            "queue full (%s): dropped %d undelivered readings (overflow=%s)",
            self._bound_text(),
            len(seqs),
            self.overflow,
        )

    def _bound_text(self) -> str:
        if self.bound == "max_bytes":
            return f"max_bytes {self.max_bytes}"
        if self.bound == "min_free_bytes":
            return f"min_free_bytes {self.min_free_bytes} of free disk"
        return f"{self.max_readings} readings"

    def _victims(self, sent: int, count: int, run: int = 1) -> list[int]:
        """Up to `count` rows of one class to delete (at least one while any are left).

        `run` > 1 thins in runs of that many neighbouring rows: the disk bound needs whole
        pages emptied, and single rows taken evenly leave every page partly full."""
        if self.overflow == "thin":
            if run > 1 and count >= 2 * run:
                victims = self._thin_runs(sent, count, run)
            else:
                victims = self._thin(sent, count)
            if victims:
                return victims
        return [row[0] for row in self.conn.execute(OLDEST, (sent, count))]

    def _thin_runs(self, sent: int, count: int, run: int) -> list[int]:
        """About `count` rows in runs of `run`, the runs spread as `_thin` spreads rows;
        the class's first and last rows stay, as they do when thinning row by row."""
        first, last = self.conn.execute(
            "SELECT min(seq), max(seq) FROM readings WHERE sent = ?", (sent,)
        ).fetchone()
        victims: set[int] = set()
        for start in self._thin(sent, count // run):
            rows = self.conn.execute(RUN, (sent, start, run)).fetchall()
            victims.update(row[0] for row in rows)
        victims.discard(first)
        victims.discard(last)
        return sorted(victims)[:count]

    def _thin(self, sent: int, count: int) -> list[int]:
        first, last = self.conn.execute(
            "SELECT min(seq), max(seq) FROM readings WHERE sent = ?", (sent,)
        ).fetchone()
        if first is None:
            return []
        params = {"sent": sent, "first": first, "last": last, "span": last - first + 1}
        total = self.unsent if sent == 0 else self.rows - self.unsent
        # Enough slices to see the shape (about ten rows each), no more than the span has.
        slices = max(1, min(last - first + 1, max(count, min(1000, total // 10))))
        params["slices"] = slices
        sizes = dict(self.conn.execute(THIN_SLICES, params).fetchall())
        rows = [sizes.get(i, 0) for i in range(slices)]
        candidates = list(rows)
        candidates[0] -= 1  # the first row
        if last != first:
            candidates[-1] -= 1  # the last row
        plan = thinning_plan(rows, candidates, count)
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS thin_plan "
            "(slice INTEGER PRIMARY KEY, start INTEGER, size INTEGER, take INTEGER)"
        )
        self.conn.execute("DELETE FROM temp.thin_plan")
        start = 0
        entries = []
        for index, (size, take) in enumerate(zip(candidates, plan)):
            if take:
                entries.append((index, start, size, take))
            start += size
        self.conn.executemany("INSERT INTO temp.thin_plan VALUES (?, ?, ?, ?)", entries)
        return [row[0] for row in self.conn.execute(THIN_PICK, params)]

    # -- the push path ------------------------------------------------------------------

    def lease(self, limit: int) -> list[Reading]:
        """The oldest unsent readings, in seq order; they stay unsent until acknowledged."""
        if limit < 1:
            raise ValueError(f"lease limit must be at least 1, not {limit}")
        with self.lock:
            self._sync_counts()
            rows = self.conn.execute(
                f"SELECT {READING_COLUMNS} FROM readings WHERE sent = 0 ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            self.in_flight = {row[0] for row in rows}
            self.evicted_in_flight = set()
        return [row_reading(row) for row in rows]

    def ack(self, seqs: Sequence[int], duplicates: int = 0) -> None:
        """Mark delivered readings sent; `duplicates` is what the receiver already had."""
        with self.lock, self._transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "UPDATE readings SET sent = 1 WHERE seq = ? AND sent = 0", [(s,) for s in seqs]
            )
            marked = self.conn.total_changes - before
            # Evicted while the request was in flight, yet delivered: not lost after all.
            rescued = self.evicted_in_flight.intersection(seqs)
            self._count(
                pushed=marked + len(rescued),
                dropped=-len(rescued),
                evicted=len(rescued),
                duplicates_acknowledged=duplicates,
            )
            self.unsent -= marked
            self.evicted_in_flight -= rescued
            self.in_flight.difference_update(seqs)

    def dead_letter(
        self,
        readings_or_seqs: Union[Sequence[Reading], Sequence[int]],
        status: Optional[int],
        reason: str,
    ) -> int:
        """Park unsent readings the receiver refused for good: kept with the status code and
        reason, counted, no longer offered by `lease`. Returns how many were parked."""
        seqs = [item.seq if isinstance(item, Reading) else item for item in readings_or_seqs]
        if any(seq is None for seq in seqs):
            raise ValueError("dead_letter needs queued readings (with a seq)")
        at = format_timestamp(utc_now())
        with self.lock, self._transaction():
            self._sync_counts()
            moved = 0
            for seq in seqs:
                cursor = self.conn.execute(
                    "INSERT INTO dead_letters (seq, device_id, sensor, sensor_type, payload, "
                    "timestamp, status, reason, dead_lettered_at) "
                    f"SELECT {READING_COLUMNS}, ?, ?, ? FROM readings WHERE seq = ? AND sent = 0",
                    (status, reason, at, seq),
                )
                if cursor.rowcount:
                    self.conn.execute("DELETE FROM readings WHERE seq = ?", (seq,))
                    moved += 1
            self._count(dead_lettered=moved)
            self.rows -= moved
            self.unsent -= moved
            self.dead_letter_rows += moved
            self.in_flight.difference_update(s for s in seqs if s is not None)
            self._bound_dead_letters()
            self._bound_bytes()
        if moved:
            log.warning("dead-lettered %d readings (status %s): %s", moved, status, reason)
        return moved

    def _bound_dead_letters(self) -> None:
        """Dead letters are kept, but not without limit: a receiver that refuses everything
        must not fill the node's disk. The oldest go first, counted and logged."""
        excess = self.dead_letter_rows - self.max_readings
        if excess <= 0:
            return
        self._evict_dead_letters(min(self.dead_letter_rows, max(excess, self.chunk)))

    def _evict_dead_letters(self, count: int) -> None:
        self.conn.execute(
            "DELETE FROM dead_letters WHERE id IN "
            "(SELECT id FROM dead_letters ORDER BY id LIMIT ?)",
            (count,),
        )
        self.dead_letter_rows -= count
        self._count(dead_letters_evicted=count)
        log.warning(
            "dead-letter table full (%s): removed the %d oldest dead letters",
            self._bound_text(),
            count,
        )

    def resend(self, status: Optional[int] = None) -> tuple[list[int], int]:
        """Move dead letters (those parked with `status`, or all) back into the queue with
        their original seqs, oldest first, so the pusher sends them again; the receiver
        stores each (device_id, seq) once, whatever it already has.

        Only as many as fit beside the undelivered readings (`max_readings`; delivered rows
        are evicted to make room, undelivered ones never): a resend must not drop what it
        was meant to save. Returns (the requeued seqs, how many stay parked).
        """
        condition, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        with self.lock, self._transaction():
            self._sync_counts()
            room = max(0, self.max_readings - self.unsent)
            rows = self.conn.execute(
                f"SELECT id, {READING_COLUMNS} FROM dead_letters {condition} "
                "ORDER BY seq, id LIMIT ?",
                (*params, room),
            ).fetchall()
            wanted = self.conn.execute(
                f"SELECT count(*) FROM dead_letters {condition}", params
            ).fetchone()[0]
            self._evict(self.rows + len(rows) - self.max_readings)  # delivered rows only
            before = self.conn.total_changes
            self.conn.executemany(
                f"INSERT OR IGNORE INTO readings ({READING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [row[1:] for row in rows],
            )
            requeued = self.conn.total_changes - before
            self.conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(r[0],) for r in rows])
            self._count(resent=requeued)
            self.rows += requeued
            self.unsent += requeued
            self.dead_letter_rows -= len(rows)
        seqs = sorted({row[1] for row in rows})
        if rows:
            log.info("requeued %d dead letters for delivery", len(rows))
        return seqs, wanted - len(rows)

    def _data_version(self) -> int:
        version: int = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return version

    def _sync_counts(self) -> None:
        """Recount the in-memory row counts when another process wrote the file (`beam-agent
        resend` beside a running agent): SQLite's data_version changes only for commits on
        other connections, so this costs one pragma when nothing happened."""
        version = self._data_version()
        if version == self.seen_version:
            return
        self.seen_version = version
        count = self.conn.execute
        self.rows = count("SELECT count(*) FROM readings").fetchone()[0]
        self.unsent = count("SELECT count(*) FROM readings WHERE sent = 0").fetchone()[0]
        self.dead_letter_rows = count("SELECT count(*) FROM dead_letters").fetchone()[0]

    # -- bookkeeping --------------------------------------------------------------------

    def record_push_result(
        self,
        ok: bool,
        detail: str,
        at: datetime,
        failure: Optional[str] = None,
        status: Optional[int] = None,
    ) -> None:
        """The last push for `status`; `failure` is why it stopped (retry, auth, tls, config),
        `status` the HTTP status of its last answer (None: no answer)."""
        stamp = format_timestamp(at)
        result: dict[str, Any] = {"ok": ok, "detail": detail, "at": stamp}
        if failure is not None:
            result["failure"] = failure
        if status is not None:
            result["status"] = status
        entry = json.dumps(result)
        with self.lock, self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_push', ?)", (entry,))
            if ok:
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('last_success_at', ?)",
                    (json.dumps(stamp),),
                )

    def record_sensor_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the per-sensor statistics so `status` in another process can show them."""
        at = format_timestamp(utc_now())
        rows = [
            (name, json.dumps(dict(values), default=json_value, allow_nan=False), at)
            for name, values in stats.items()
        ]
        with self.lock, self._transaction():
            self.conn.execute("DELETE FROM sensor_stats")
            self.conn.executemany("INSERT INTO sensor_stats VALUES (?, ?, ?)", rows)

    # -- reading ------------------------------------------------------------------------

    def depth(self) -> int:
        """Readings waiting for delivery."""
        with self.lock:
            self._sync_counts()
            return self.unsent

    def stored(self) -> int:
        """All stored readings, sent or not: what `max_readings` bounds."""
        with self.lock:
            return self.rows

    def counters(self) -> dict[str, int]:
        with self.lock:
            return read_counters(self.conn)

    def status(self) -> dict[str, Any]:
        with self.lock:
            return read_status(self.conn, counts=(self.unsent, self.rows, self.dead_letter_rows))

    def dead_letters(self) -> list[dict[str, Any]]:
        """The parked readings with why they were parked, oldest first."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {READING_COLUMNS}, status, reason, dead_lettered_at "
                "FROM dead_letters ORDER BY id"
            ).fetchall()
        return [
            {"reading": row_reading(row[:6]), "status": row[6], "reason": row[7], "at": row[8]}
            for row in rows
        ]

    def export(
        self, since: Optional[datetime] = None, sensor: Optional[str] = None
    ) -> Iterator[Reading]:
        """Stored readings (sent and unsent) in seq order, streamed over a connection of its
        own so a long export never blocks the agent's writer."""
        conn = open_read_only(self.state_dir)
        return _closing_iter(conn, iter_readings(conn, since, sensor))

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> ReadingQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _closing_iter(conn: sqlite3.Connection, readings: Iterable[Reading]) -> Iterator[Reading]:
    try:
        yield from readings
    finally:
        conn.close()

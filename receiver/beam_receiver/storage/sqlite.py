"""SQLite storage: the embedded default. Its schema, migrations, connections and the few
statements only SQLite spells this way; the shared logic is in base.py.

No Flask here: the benchmark and the tests drive it directly.

Each thread keeps its own connection (gunicorn's threads, the test client's thread). Writes
run in `BEGIN IMMEDIATE` transactions so concurrent writers queue on SQLite's busy timeout
instead of failing half-way; a wait longer than that timeout surfaces as
sqlite3.OperationalError, which the app answers with 503 and Retry-After.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

from beam_receiver.storage.base import Params, Session, Storage, WriteLock
from beam_receiver.storage.records import SchemaTooNewError, json_path
from beam_receiver.timestamps import format_ms, now_ms

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "readings, sensors, nodes and telemetry events",
        (
            # id is the stored order and the paging cursor; (device_id, seq) the identity.
            """CREATE TABLE readings (
                id INTEGER PRIMARY KEY,
                device_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                sensor TEXT NOT NULL,
                sensor_type TEXT NOT NULL,
                timestamp TEXT NOT NULL,
                ts_ms INTEGER NOT NULL,
                payload TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                UNIQUE (device_id, seq)
            )""",
            # Time ranges of one sensor: analytics buckets, latest per sensor, windows.
            "CREATE INDEX readings_sensor_time ON readings (device_id, sensor, ts_ms)",
            # Paging one device (or one of its few sensors) in stored order, without a sort.
            "CREATE INDEX readings_device_order ON readings (device_id, id)",
            # Fleet-wide time windows.
            "CREATE INDEX readings_time ON readings (ts_ms)",
            # One row per (device, sensor) ever seen: the entry point for "latest per sensor".
            """CREATE TABLE sensors (
                device_id TEXT NOT NULL,
                sensor TEXT NOT NULL,
                sensor_type TEXT NOT NULL,
                first_received_ms INTEGER NOT NULL,
                last_received_ms INTEGER NOT NULL,
                PRIMARY KEY (device_id, sensor)
            ) WITHOUT ROWID""",
            """CREATE TABLE telemetry_events (
                id INTEGER PRIMARY KEY,
                node_id TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                timestamp TEXT NOT NULL,
                role TEXT,
                uptime_seconds REAL,
                software_version TEXT,
                ip_address TEXT,
                protocol_version INTEGER,
                metrics TEXT NOT NULL,
                tags TEXT NOT NULL
            )""",
            "CREATE INDEX telemetry_events_node_time ON telemetry_events (node_id, received_at_ms)",
            # What is known about each node now: registration plus its last heartbeat.
            """CREATE TABLE nodes (
                node_id TEXT PRIMARY KEY,
                role TEXT,
                hostname TEXT,
                ip_address TEXT,
                software_version TEXT,
                tags TEXT NOT NULL DEFAULT '{}',
                registered_at_ms INTEGER,
                last_seen_ms INTEGER,
                last_heartbeat_timestamp TEXT,
                uptime_seconds REAL,
                protocol_version INTEGER,
                queue_depth INTEGER,
                metrics TEXT NOT NULL DEFAULT '{}'
            ) WITHOUT ROWID""",
        ),
    ),
    (
        2,
        "index one device's readings by time",
        # A time window of one device must cost the window, not the device's whole history.
        ("CREATE INDEX readings_device_time ON readings (device_id, ts_ms)",),
    ),
    (
        3,
        "dashboard logins, failed-login counts and the health probe's row",
        (
            # One row per dashboard login: the cookie holds a random id, this table only its
            # SHA-256, so a copy of the database cannot be turned into a session.
            """CREATE TABLE dashboard_logins (
                id_hash TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                password_fingerprint TEXT NOT NULL,
                started_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX dashboard_logins_started ON dashboard_logins (started_at_ms)",
            # Login attempts per user name and per client address, in a fixed window that
            # starts at the first attempt; shared by every worker.
            """CREATE TABLE login_failures (
                key TEXT PRIMARY KEY,
                failures INTEGER NOT NULL,
                window_start_ms INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX login_failures_window ON login_failures (window_start_ms)",
            # /healthz rewrites this one row to prove the database still takes a write.
            """CREATE TABLE health_probe (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                written_at_ms INTEGER NOT NULL,
                room BLOB
            )""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def reading_index(
    device_id: Optional[str], sensor: Optional[str], start_ms: Optional[int], end_ms: Optional[int]
) -> str:
    """Pin the index for a device's time window: without statistics SQLite prefers the
    stored-order index, which walks the device's whole history to find one hour of it."""
    if device_id is None or (start_ms is None and end_ms is None):
        return ""
    return "INDEXED BY readings_sensor_time" if sensor else "INDEXED BY readings_device_time"


SERIES = """
    SELECT (ts_ms / :bucket_ms) * :bucket_ms AS bucket_start,
           COUNT(*), MIN(value), MAX(value), AVG(value)
    FROM (
        SELECT ts_ms, json_extract(payload, :path) AS value
        FROM readings
        WHERE device_id = :device_id AND sensor = :sensor
          AND ts_ms >= :start_ms AND ts_ms < :end_ms
          AND json_type(payload, :path) IN ('integer', 'real')
    )
    GROUP BY bucket_start
    ORDER BY bucket_start
"""
# Random bytes, so that SQLite cannot skip rewriting pages whose content is unchanged.
WRITE_HEALTH_PROBE = """
    INSERT INTO health_probe (id, written_at_ms, room) VALUES (1, ?, randomblob(?))
    ON CONFLICT (id) DO UPDATE SET written_at_ms = excluded.written_at_ms, room = excluded.room
"""
# What the probe writes: as many pages as storing one reading dirties (the table, its five
# indexes and the sensor's row), so a probe that fits means a reading would fit.
HEALTH_PROBE_BYTES = 32 * 1024


def connect(
    path: Path, busy_timeout_ms: int, synchronous: str = "FULL", create: bool = False
) -> sqlite3.Connection:
    """One connection in autocommit mode; transactions are begun explicitly.

    Without `create` the file must already exist, so a database deleted under a running
    receiver is reported as unavailable instead of silently recreated empty.
    """
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"unknown synchronous mode {synchronous!r}")
    mode = "rwc" if create else "rw"
    connection = sqlite3.connect(
        f"file:{quote(str(path))}?mode={mode}",
        uri=True,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA cache_size = -16000")
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _rollback_quietly(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        with suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


def _begin_immediate(connection: sqlite3.Connection, deadline: float, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, retried in short sleeps until the deadline, then 'database is locked'."""
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        delay = 0.0005
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(min(delay * random.uniform(0.5, 1.5), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.004)
    finally:
        with suppress(sqlite3.Error):  # never hide the error that got us here
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


class SqliteSession:
    """A sqlite3 connection inside a write transaction, as base.Session."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        return self.connection.executemany(sql, rows).rowcount


class Database(Storage):
    """The receiver's SQLite database: one connection per thread, explicit transactions."""

    backend = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def describe(self) -> str:
        return str(self.path)

    def is_outage(self, exc: BaseException) -> bool:
        """A locked, full, missing or unreadable file; integrity and programming errors are
        bugs, not outages."""
        return type(exc) is sqlite3.DatabaseError or isinstance(exc, sqlite3.OperationalError)

    def connection(self) -> sqlite3.Connection:
        connection: Optional[sqlite3.Connection] = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path, self.busy_timeout_ms, self.synchronous)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection (at shutdown, or at the end of a test)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def read(self, sql: str, params: Params = ()) -> list[Any]:
        return self.connection().execute(sql, params).fetchall()

    @contextmanager
    def write(self, lock: Optional[WriteLock] = None) -> Iterator[Session]:
        """One writer at a time covers every WriteLock."""
        with self.transaction() as connection:
            yield SqliteSession(connection)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything in the block is stored, or nothing is.

        Writers queue twice, and neither queue sleeps longer than it must: threads of this
        process on a lock (woken the moment it is free), then processes on SQLite's write
        lock, polled every millisecond or so. SQLite's own busy handler backs off to sleeps
        of 25-100 ms, which is what a batch's p99 latency would otherwise be made of.
        """
        with self._write_turn(self.connection) as connection:
            yield connection

    @contextmanager
    def _write_turn(
        self, open_connection: Callable[[], sqlite3.Connection]
    ) -> Iterator[sqlite3.Connection]:
        """This process's write lock, then BEGIN IMMEDIATE on the connection; both within
        busy_timeout_ms, else 'database is locked'. COMMIT at the end, ROLLBACK on error."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise sqlite3.OperationalError(
                f"database is locked (no turn to write within {self.busy_timeout_ms} ms)"
            )
        try:
            connection = open_connection()
            _begin_immediate(connection, deadline, self.busy_timeout_ms)
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                _rollback_quietly(connection)
                raise
        finally:
            self._write_lock.release()

    def _reading_index(
        self,
        device_id: Optional[str],
        sensor: Optional[str],
        start_ms: Optional[int],
        end_ms: Optional[int],
    ) -> str:
        return reading_index(device_id, sensor, start_ms, end_ms)

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; safe when several workers start at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = connect(self.path, self.busy_timeout_ms, self.synchronous, create=True)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
            current = int(
                connection.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                ).fetchone()[0]
            )
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.path} has schema version {current}; this beam-receiver knows"
                    f" versions up to {SCHEMA_VERSION}: upgrade beam-receiver"
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (version, description, format_ms(now_ms())),
                )
            connection.execute("COMMIT")
            return max(current, SCHEMA_VERSION)
        except BaseException:
            _rollback_quietly(connection)
            raise
        finally:
            connection.close()

    def probe_write(self) -> int:
        """Rewrite the one health_probe row over a fresh connection; returns the schema version.

        Proves what storing readings needs: the file is still there (a fresh connection does
        not write through an old handle, nor create the file anew) and writable, it has room
        for HEALTH_PROBE_BYTES more, and the write lock comes within busy_timeout_ms. The
        probe's connection commits without an fsync (synchronous = NORMAL in WAL mode): its
        row need not survive a power cut, so a health check costs no disk flush.
        """
        connection = connect(self.path, self.busy_timeout_ms, "NORMAL")
        try:
            with self._write_turn(lambda: connection):
                connection.execute(WRITE_HEALTH_PROBE, (now_ms(), HEALTH_PROBE_BYTES))
                row = connection.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        finally:
            connection.close()
        if row is None or row[0] is None:
            raise sqlite3.DatabaseError("the database has no schema version")
        return int(row[0])

    def journal_mode(self) -> str:
        return str(self.connection().execute("PRAGMA journal_mode").fetchone()[0])

    def series(
        self,
        device_id: str,
        sensor: str,
        field: str,
        bucket_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> list[dict[str, Any]]:
        rows = self.read(
            SERIES,
            {
                "bucket_ms": bucket_ms,
                "path": json_path(field),
                "device_id": device_id,
                "sensor": sensor,
                "start_ms": start_ms,
                "end_ms": end_ms,
            },
        )
        return [
            {"start_ms": row[0], "count": row[1], "min": row[2], "max": row[3], "avg": row[4]}
            for row in rows
        ]

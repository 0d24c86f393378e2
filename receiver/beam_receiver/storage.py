"""SQLite storage: the schema, its migrations and every SQL statement the receiver runs.

No Flask here: the benchmark and the tests drive it directly. Every value reaches SQLite as
a bound parameter; the only SQL text assembled at run time is chosen from fixed fragments,
so no query parameter can change a statement.

Each thread keeps its own connection (gunicorn's threads, the test client's thread). Writes
run in `BEGIN IMMEDIATE` transactions so concurrent writers queue on SQLite's busy timeout
instead of failing half-way; a wait longer than that timeout surfaces as
sqlite3.OperationalError, which the app answers with 503 and Retry-After.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import quote

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

# SQLite's INTEGER range: what a seq, and any integer in a payload, must fit in.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

INSERT_READING = """
    INSERT INTO readings
        (device_id, seq, sensor, sensor_type, timestamp, ts_ms, payload, received_at_ms)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (device_id, seq) DO NOTHING
"""
UPSERT_SENSOR = """
    INSERT INTO sensors (device_id, sensor, sensor_type, first_received_ms, last_received_ms)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (device_id, sensor) DO UPDATE SET
        sensor_type = excluded.sensor_type,
        last_received_ms = excluded.last_received_ms
"""
# The lowest seq this device holds: the (device_id, seq) unique index answers it in one probe.
LOWEST_SEQ = "SELECT MIN(seq) FROM readings WHERE device_id = ?"
# Is a reading without a seq stored already? The (device_id, sensor, ts_ms) index narrows it
# to the few readings of that sensor at that instant.
ALREADY_STORED = """
    SELECT 1 FROM readings
    WHERE device_id = ? AND sensor = ? AND ts_ms = ? AND sensor_type = ? AND payload = ?
    LIMIT 1
"""
READING_COLUMNS = "id, device_id, sensor, sensor_type, payload, timestamp, seq, received_at_ms"
# The only WHERE fragments a readings query can be built from.
READING_FILTERS = {
    "device_id": "device_id = ?",
    "sensor": "sensor = ?",
    "sensor_type": "sensor_type = ?",
    "start_ms": "ts_ms >= ?",
    "end_ms": "ts_ms < ?",
    "after_id": "id > ?",
}


def reading_index(
    device_id: Optional[str], sensor: Optional[str], start_ms: Optional[int], end_ms: Optional[int]
) -> str:
    """Pin the index for a device's time window: without statistics SQLite prefers the
    stored-order index, which walks the device's whole history to find one hour of it."""
    if device_id is None or (start_ms is None and end_ms is None):
        return ""
    return "INDEXED BY readings_sensor_time" if sensor else "INDEXED BY readings_device_time"


LATEST_READINGS = f"""
    SELECT {", ".join("r." + c.strip() for c in READING_COLUMNS.split(","))}
    FROM sensors AS s
    JOIN readings AS r ON r.id = (
        SELECT id FROM readings
        WHERE device_id = s.device_id AND sensor = s.sensor
        ORDER BY ts_ms DESC, id DESC
        LIMIT 1
    )
"""
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
INSERT_TELEMETRY = """
    INSERT INTO telemetry_events (node_id, received_at_ms, timestamp, role, uptime_seconds,
        software_version, ip_address, protocol_version, metrics, tags)
    VALUES (:node_id, :received_at_ms, :timestamp, :role, :uptime_seconds,
        :software_version, :ip_address, :protocol_version, :metrics, :tags)
"""
UPSERT_NODE_FROM_HEARTBEAT = """
    INSERT INTO nodes (node_id, role, ip_address, software_version, tags, last_seen_ms,
        last_heartbeat_timestamp, uptime_seconds, protocol_version, queue_depth, metrics)
    VALUES (:node_id, :role, :ip_address, :software_version, :tags, :received_at_ms,
        :timestamp, :uptime_seconds, :protocol_version, :queue_depth, :metrics)
    ON CONFLICT (node_id) DO UPDATE SET
        role = COALESCE(excluded.role, role),
        ip_address = COALESCE(excluded.ip_address, ip_address),
        software_version = COALESCE(excluded.software_version, software_version),
        tags = excluded.tags,
        last_seen_ms = excluded.last_seen_ms,
        last_heartbeat_timestamp = excluded.last_heartbeat_timestamp,
        uptime_seconds = excluded.uptime_seconds,
        protocol_version = excluded.protocol_version,
        queue_depth = excluded.queue_depth,
        metrics = excluded.metrics
"""
UPSERT_NODE_FROM_REGISTRATION = """
    INSERT INTO nodes (node_id, role, hostname, ip_address, software_version, tags,
        registered_at_ms)
    VALUES (:node_id, :role, :hostname, :ip_address, :software_version, :tags,
        :received_at_ms)
    ON CONFLICT (node_id) DO UPDATE SET
        role = COALESCE(excluded.role, role),
        hostname = COALESCE(excluded.hostname, hostname),
        ip_address = COALESCE(excluded.ip_address, ip_address),
        software_version = COALESCE(excluded.software_version, software_version),
        tags = excluded.tags,
        registered_at_ms = excluded.registered_at_ms
"""
# Random bytes, so that SQLite cannot skip rewriting pages whose content is unchanged.
WRITE_HEALTH_PROBE = """
    INSERT INTO health_probe (id, written_at_ms, room) VALUES (1, ?, randomblob(?))
    ON CONFLICT (id) DO UPDATE SET written_at_ms = excluded.written_at_ms, room = excluded.room
"""
# What the probe writes: as many pages as storing one reading dirties (the table, its five
# indexes and the sensor's row), so a probe that fits means a reading would fit.
HEALTH_PROBE_BYTES = 32 * 1024
LOGIN_FAILURES = "SELECT key, failures, window_start_ms FROM login_failures WHERE key IN ({})"
COUNT_LOGIN_ATTEMPT = """
    INSERT INTO login_failures (key, failures, window_start_ms) VALUES (?, 1, ?)
    ON CONFLICT (key) DO UPDATE SET failures = failures + 1
"""
NODE_COLUMNS = (
    "node_id, role, hostname, ip_address, software_version, tags, registered_at_ms,"
    " last_seen_ms, last_heartbeat_timestamp, uptime_seconds, protocol_version,"
    " queue_depth, metrics"
)


class NewReading(NamedTuple):
    """A validated reading, in the column order of INSERT_READING (received_at_ms aside).

    Every endpoint that writes readings hands them to storage in this one form. seq is None
    when the sender has none (collectd): insert_readings numbers those itself.
    """

    device_id: str
    seq: Optional[int]
    sensor: str
    sensor_type: str
    timestamp: str
    ts_ms: int
    payload: str  # JSON text of an object


class Heartbeat(NamedTuple):
    node_id: str
    timestamp: str
    role: Optional[str]
    uptime_seconds: Optional[float]
    software_version: Optional[str]
    ip_address: Optional[str]
    protocol_version: Optional[int]
    queue_depth: Optional[int]
    metrics: str  # JSON text of an object
    tags: str  # JSON text of an object


class Registration(NamedTuple):
    node_id: str
    role: Optional[str]
    hostname: Optional[str]
    ip_address: Optional[str]
    software_version: Optional[str]
    tags: str  # JSON text of an object


class DashboardLogin(NamedTuple):
    """A dashboard login that has not been ended: whose, and under which password."""

    username: str
    password_fingerprint: str
    started_at_ms: int


class LoginLimit(NamedTuple):
    """How many login attempts one key (a user name, a client address) may make per window."""

    key: str
    max_attempts: int


@dataclass(frozen=True)
class InsertResult:
    accepted: int
    duplicates: int


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer beam-receiver than this one."""


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


def _reading_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "device_id": row[1],
        "sensor": row[2],
        "sensor_type": row[3],
        "payload": json.loads(row[4]),
        "timestamp": row[5],
        "seq": row[6],
        "received_at": format_ms(row[7]),
    }


def _node_dict(row: Sequence[Any]) -> dict[str, Any]:
    names = [name.strip() for name in NODE_COLUMNS.split(",")]
    node = dict(zip(names, row))
    node["tags"] = json.loads(node["tags"])
    node["metrics"] = json.loads(node["metrics"])
    return node


def _insert_numbered(
    connection: sqlite3.Connection, readings: Sequence[NewReading], received: int
) -> int:
    """The sender's own seqs (an agent's, 1 and up): a (device_id, seq) already stored, or
    twice in the batch, is a duplicate and the first stored copy wins. Returns how many
    were new."""
    if not readings:
        return 0
    sensors = {(r.device_id, r.sensor): r.sensor_type for r in readings}
    cursor = connection.executemany(INSERT_READING, [(*reading, received) for reading in readings])
    connection.executemany(
        UPSERT_SENSOR, [(d, s, t, received, received) for (d, s), t in sensors.items()]
    )
    return cursor.rowcount


def _insert_unnumbered(
    connection: sqlite3.Connection, readings: Sequence[NewReading], received: int
) -> int:
    """Readings whose sender has no seq and never retries (collectd): numbered here, inside
    the caller's write transaction, downwards from -1 per device.

    The write lock serialises the numbering, and the range never meets the agents' seqs
    (1 and up), so their exactly-once path is untouched even on a shared device id. With
    no seq to compare, a reading whose device, sensor, time, type and payload are stored
    already (or earlier in the batch) is the duplicate. Returns how many were new.
    """
    seen: set[tuple[str, str, int, str, str]] = set()
    new: dict[str, list[NewReading]] = {}  # device_id -> its new readings, in batch order
    for reading in readings:
        identity = (
            reading.device_id,
            reading.sensor,
            reading.ts_ms,
            reading.sensor_type,
            reading.payload,
        )
        if identity in seen:
            continue
        seen.add(identity)
        if connection.execute(ALREADY_STORED, identity).fetchone() is None:
            new.setdefault(reading.device_id, []).append(reading)
    for device_id, fresh in new.items():
        lowest = connection.execute(LOWEST_SEQ, (device_id,)).fetchone()[0]
        first = min(int(lowest or 0), 0) - 1
        if first - len(fresh) < INT64_MIN:
            raise ValueError(f"{device_id!r} has used up the receiver-assigned seq range")
        connection.executemany(
            INSERT_READING,
            [
                (*reading._replace(seq=first - offset), received)
                for offset, reading in enumerate(fresh)
            ],
        )
        sensors = {reading.sensor: reading.sensor_type for reading in fresh}
        connection.executemany(
            UPSERT_SENSOR,
            [(device_id, s, sensors[s], received, received) for s in sorted(sensors)],
        )
    return sum(len(fresh) for fresh in new.values())


def _login_wait_ms(
    connection: sqlite3.Connection, limits: Sequence[LoginLimit], window_ms: int, now: int
) -> int:
    """How long until every key is under its limit again (0: an attempt may be made now)."""
    allowed = {limit.key: limit.max_attempts for limit in limits}
    rows = connection.execute(LOGIN_FAILURES.format(", ".join("?" * len(allowed))), list(allowed))
    wait = 0
    for key, failures, window_start_ms in rows:
        window_end = window_start_ms + window_ms
        if failures >= allowed[key] and window_end > now:
            wait = max(wait, window_end - now)
    return wait


def json_path(field: str) -> str:
    """A JSON path for a payload field; dots reach into nested objects ("env.temp")."""
    parts = field.split(".")
    if not all(parts) or any('"' in part for part in parts):
        raise ValueError(f"{field!r} is not a payload field name")
    return "$" + "".join(f'."{part}"' for part in parts)


class Database:
    """The receiver's SQLite database: one connection per thread, explicit transactions."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

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

    # -- readings -------------------------------------------------------------------------

    def insert_readings(
        self, readings: Sequence[NewReading], received_at_ms: Optional[int] = None
    ) -> InsertResult:
        """Store a batch in one transaction, all or nothing; what is stored already is a
        duplicate, counted but not stored again (see _insert_numbered, _insert_unnumbered)."""
        received = now_ms() if received_at_ms is None else received_at_ms
        numbered = [reading for reading in readings if reading.seq is not None]
        unnumbered = [reading for reading in readings if reading.seq is None]
        with self.transaction() as connection:
            accepted = _insert_numbered(connection, numbered, received)
            accepted += _insert_unnumbered(connection, unnumbered, received)
        return InsertResult(accepted=accepted, duplicates=len(readings) - accepted)

    def query_readings(
        self,
        device_id: Optional[str] = None,
        sensor: Optional[str] = None,
        sensor_type: Optional[str] = None,
        start_ms: Optional[int] = None,
        end_ms: Optional[int] = None,
        after_id: Optional[int] = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], Optional[int]]:
        """Readings in stored order and the cursor for the next page (None on the last)."""
        given = {
            "device_id": device_id,
            "sensor": sensor,
            "sensor_type": sensor_type,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "after_id": after_id,
        }
        clauses = [READING_FILTERS[name] for name, value in given.items() if value is not None]
        params: list[Any] = [value for value in given.values() if value is not None]
        where = " AND ".join(clauses) if clauses else "1"
        index = reading_index(device_id, sensor, start_ms, end_ms)
        sql = f"SELECT {READING_COLUMNS} FROM readings {index} WHERE {where} ORDER BY id LIMIT ?"
        rows = self.connection().execute(sql, [*params, limit + 1]).fetchall()
        next_cursor = int(rows[limit - 1][0]) if len(rows) > limit else None
        return [_reading_dict(row) for row in rows[:limit]], next_cursor

    def latest_readings(self, device_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The newest reading (by timestamp) of every sensor, or of one device's sensors."""
        params: tuple[str, ...] = ()
        sql = LATEST_READINGS + " ORDER BY s.device_id, s.sensor"
        if device_id is not None:
            sql = LATEST_READINGS + " WHERE s.device_id = ? ORDER BY s.sensor"
            params = (device_id,)
        return [_reading_dict(row) for row in self.connection().execute(sql, params)]

    def series(
        self,
        device_id: str,
        sensor: str,
        field: str,
        bucket_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> list[dict[str, Any]]:
        """count/min/max/avg of one numeric payload field per time bucket, all in SQL.

        Buckets start at multiples of the bucket width since the epoch, so the same bucket
        has the same edges in every request; buckets without a numeric value are omitted.
        """
        rows = self.connection().execute(
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

    # -- nodes ----------------------------------------------------------------------------

    def record_heartbeat(
        self,
        heartbeat: Heartbeat,
        received_at_ms: Optional[int] = None,
        keep_events_ms: Optional[int] = None,
    ) -> None:
        """Keep the heartbeat as an event and make it the node's current state.

        Events of this node older than keep_events_ms are deleted in the same transaction,
        a few rows at a time, so the history never needs a separate clean-up job.
        """
        received = now_ms() if received_at_ms is None else received_at_ms
        values = {**heartbeat._asdict(), "received_at_ms": received}
        with self.transaction() as connection:
            connection.execute(
                INSERT_TELEMETRY, {k: v for k, v in values.items() if k != "queue_depth"}
            )
            connection.execute(UPSERT_NODE_FROM_HEARTBEAT, values)
            if keep_events_ms is not None:
                connection.execute(
                    "DELETE FROM telemetry_events WHERE node_id = ? AND received_at_ms < ?",
                    (heartbeat.node_id, received - keep_events_ms),
                )

    def register_node(
        self, registration: Registration, received_at_ms: Optional[int] = None
    ) -> None:
        values = {
            **registration._asdict(),
            "received_at_ms": now_ms() if received_at_ms is None else received_at_ms,
        }
        with self.transaction() as connection:
            connection.execute(UPSERT_NODE_FROM_REGISTRATION, values)

    def node_rows(self) -> list[dict[str, Any]]:
        """Every node that ever registered or sent a heartbeat, by node_id."""
        rows = self.connection().execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id")
        return [_node_dict(row) for row in rows]

    def node_row(self, node_id: str) -> Optional[dict[str, Any]]:
        row = (
            self.connection()
            .execute(f"SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = ?", (node_id,))
            .fetchone()
        )
        return None if row is None else _node_dict(row)

    def telemetry_events(self, node_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A node's most recent heartbeats, newest first."""
        rows = self.connection().execute(
            "SELECT received_at_ms, timestamp, role, uptime_seconds, software_version,"
            " ip_address, protocol_version, metrics, tags FROM telemetry_events"
            " WHERE node_id = ? ORDER BY received_at_ms DESC, id DESC LIMIT ?",
            (node_id, limit),
        )
        return [
            {
                "received_at": format_ms(row[0]),
                "timestamp": row[1],
                "role": row[2],
                "uptime_seconds": row[3],
                "software_version": row[4],
                "ip_address": row[5],
                "protocol_version": row[6],
                "metrics": json.loads(row[7]),
                "tags": json.loads(row[8]),
            }
            for row in rows
        ]

    # -- dashboard logins -----------------------------------------------------------------

    def start_login(
        self,
        id_hash: str,
        login: DashboardLogin,
        forget_before_ms: int,
    ) -> None:
        """Record a new login; logins started before forget_before_ms (their cookies have
        expired anyway) are deleted in the same transaction."""
        with self.transaction() as connection:
            connection.execute(
                "DELETE FROM dashboard_logins WHERE started_at_ms < ?", (forget_before_ms,)
            )
            connection.execute(
                "INSERT INTO dashboard_logins"
                " (id_hash, username, password_fingerprint, started_at_ms) VALUES (?, ?, ?, ?)",
                (id_hash, *login),
            )

    def dashboard_login(self, id_hash: str) -> Optional[DashboardLogin]:
        """The login with this id hash, unless it was ended (one primary-key probe)."""
        row = (
            self.connection()
            .execute(
                "SELECT username, password_fingerprint, started_at_ms FROM dashboard_logins"
                " WHERE id_hash = ?",
                (id_hash,),
            )
            .fetchone()
        )
        return None if row is None else DashboardLogin(*row)

    def end_login(self, id_hash: str) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM dashboard_logins WHERE id_hash = ?", (id_hash,))

    # -- login throttling -----------------------------------------------------------------

    def login_wait_ms(self, limits: Sequence[LoginLimit], window_ms: int, now: int) -> int:
        """How long these keys must wait before another attempt (0: none); reads only."""
        return _login_wait_ms(self.connection(), limits, window_ms, now)

    def count_login_attempt(self, limits: Sequence[LoginLimit], window_ms: int, now: int) -> int:
        """Count an attempt against every key, unless one is at its limit: then count nothing
        and return how long to wait. Counted before the password is checked, in one write
        transaction, so concurrent attempts in several workers cannot overshoot a limit.
        Windows that have ended are deleted on the way."""
        with self.transaction() as connection:
            wait = _login_wait_ms(connection, limits, window_ms, now)
            if wait:
                return wait
            connection.execute(
                "DELETE FROM login_failures WHERE window_start_ms <= ?", (now - window_ms,)
            )
            connection.executemany(COUNT_LOGIN_ATTEMPT, [(limit.key, now) for limit in limits])
            return 0

    def forgive_login_attempt(self, cleared_key: str, counted_key: str) -> None:
        """After a good password: cleared_key (the user) starts afresh, and counted_key (the
        address) gets back the attempt that turned out not to be a failure."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM login_failures WHERE key = ?", (cleared_key,))
            connection.execute(
                "UPDATE login_failures SET failures = failures - 1 WHERE key = ? AND failures > 0",
                (counted_key,),
            )

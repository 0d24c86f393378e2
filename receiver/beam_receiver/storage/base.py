"""What every storage backend does the same way: the receiver's storage contract, once.

`Storage` holds the logic that does not depend on the database: the all-or-nothing batch
and its duplicate count, the numbering of readings that come without a seq, the readings
query and its cursor, the node and reading dicts, the login throttle's arithmetic and the
retention batches. A backend (sqlite.py, postgres.py) supplies connections, transactions,
its migrations, the health probe and the few statements its dialect spells differently.

Statements are written once, in SQLite's parameter style (`?` and `:name`); the PostgreSQL
backend rewrites the placeholders. Every value is a bound parameter; the only SQL text
assembled at run time comes from fixed fragments, so no query parameter can change a
statement.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from enum import IntEnum
from typing import Any, Optional, Protocol, Union

from beam_receiver.storage.records import (
    INT64_MIN,
    DashboardLogin,
    Heartbeat,
    InsertResult,
    LoginLimit,
    NewReading,
    Registration,
)
from beam_receiver.timestamps import format_ms, now_ms

Params = Union[Sequence[Any], Mapping[str, Any]]

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
# How far before a collectd plugin instance's newest value list its others may be stamped:
# collectd stamps each value list as it reads it, so one read of df-root's df_complex-free,
# -used and percent_bytes-used can be a few milliseconds apart. Far below any interval.
COLLECTD_READ_SPREAD_MS = 1000
# Every reading of a sensor's newest timestamp: one for an agent's sensor; for a collectd
# plugin instance, its value lists of the newest read (cpu-0's percent-user, percent-system,
# ...), which latest_readings narrows to the newest of each.
LATEST_READINGS = f"""
    SELECT {", ".join("r." + c.strip() for c in READING_COLUMNS.split(","))}
    FROM sensors AS s
    JOIN readings AS r ON r.device_id = s.device_id AND r.sensor = s.sensor AND r.ts_ms >= (
        SELECT max(ts_ms) FROM readings
        WHERE device_id = s.device_id AND sensor = s.sensor
    ) - CASE WHEN s.sensor_type = 'collectd' THEN {COLLECTD_READ_SPREAD_MS} ELSE 0 END
"""
# A node that sends only collectd is seen through it: its last value lists say it is alive.
# A node with heartbeats keeps their word (collectd must not hide a dead agent).
TOUCH_NODE_FROM_COLLECTD = """
    INSERT INTO nodes (node_id, role, last_seen_ms) VALUES (?, 'collectd', ?)
    ON CONFLICT (node_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms
    WHERE nodes.last_heartbeat_timestamp IS NULL
"""
INSERT_TELEMETRY = """
    INSERT INTO telemetry_events (node_id, received_at_ms, timestamp, role, uptime_seconds,
        software_version, ip_address, protocol_version, metrics, tags)
    VALUES (:node_id, :received_at_ms, :timestamp, :role, :uptime_seconds,
        :software_version, :ip_address, :protocol_version, :metrics, :tags)
"""
# The stored row is named by its table: PostgreSQL finds a bare column ambiguous next to
# `excluded`, SQLite takes either spelling.
UPSERT_NODE_FROM_HEARTBEAT = """
    INSERT INTO nodes (node_id, role, ip_address, software_version, tags, last_seen_ms,
        last_heartbeat_timestamp, uptime_seconds, protocol_version, queue_depth, metrics)
    VALUES (:node_id, :role, :ip_address, :software_version, :tags, :received_at_ms,
        :timestamp, :uptime_seconds, :protocol_version, :queue_depth, :metrics)
    ON CONFLICT (node_id) DO UPDATE SET
        role = COALESCE(excluded.role, nodes.role),
        ip_address = COALESCE(excluded.ip_address, nodes.ip_address),
        software_version = COALESCE(excluded.software_version, nodes.software_version),
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
        role = COALESCE(excluded.role, nodes.role),
        hostname = COALESCE(excluded.hostname, nodes.hostname),
        ip_address = COALESCE(excluded.ip_address, nodes.ip_address),
        software_version = COALESCE(excluded.software_version, nodes.software_version),
        tags = excluded.tags,
        registered_at_ms = excluded.registered_at_ms
"""
LOGIN_FAILURES = "SELECT key, failures, window_start_ms FROM login_failures WHERE key IN ({})"
COUNT_LOGIN_ATTEMPT = """
    INSERT INTO login_failures (key, failures, window_start_ms) VALUES (?, 1, ?)
    ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1
"""
NODE_COLUMNS = (
    "node_id, role, hostname, ip_address, software_version, tags, registered_at_ms,"
    " last_seen_ms, last_heartbeat_timestamp, uptime_seconds, protocol_version,"
    " queue_depth, metrics"
)
TELEMETRY_COLUMNS = (
    "received_at_ms, timestamp, role, uptime_seconds, software_version, ip_address,"
    " protocol_version, metrics, tags"
)
# Retention: the oldest readings first, through the (ts_ms) index, a batch at a time.
PRUNE_READINGS = """
    DELETE FROM readings WHERE id IN (
        SELECT id FROM readings WHERE ts_ms < ? ORDER BY ts_ms LIMIT ?
    )
"""
# Per node, through the (node_id, received_at_ms) index: no scan of every node's history.
PRUNE_NODE_TELEMETRY = """
    DELETE FROM telemetry_events WHERE id IN (
        SELECT id FROM telemetry_events WHERE node_id = ? AND received_at_ms < ? LIMIT ?
    )
"""


OLD_NODE_TELEMETRY = (
    "SELECT 1 FROM telemetry_events WHERE node_id = ? AND received_at_ms < ? LIMIT 1"
)


class Rows(Protocol):
    """What executing a statement gives back (a DB-API cursor, sqlite3's or psycopg's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session(Protocol):
    """One connection inside one write transaction."""

    def execute(self, sql: str, params: Params = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run sql once per parameter row; returns the rows changed in all."""
        ...


class WriteLock(IntEnum):
    """What a write transaction must be alone in doing.

    SQLite has one writer at a time anyway. PostgreSQL runs writers side by side, so these
    become transaction-level advisory locks: READINGS keeps stored order (the id, the
    paging cursor) equal to commit order, so a page never skips a reading committed late,
    and numbers collectd's readings without a race; LOGINS makes the throttle's check and
    count one step across workers.
    """

    READINGS = 0x6265_616D_0001
    LOGINS = 0x6265_616D_0002


def reading_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "device_id": row[1],
        "sensor": row[2],
        "sensor_type": row[3],
        "payload": json.loads(row[4]),
        "timestamp": row[5],
        "seq": row[6],
        "received_at": format_ms(row[7]),
    }


def node_dict(row: Sequence[Any]) -> dict[str, Any]:
    names = [name.strip() for name in NODE_COLUMNS.split(",")]
    node = dict(zip(names, row))
    node["tags"] = json.loads(node["tags"])
    node["metrics"] = json.loads(node["metrics"])
    return node


def telemetry_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
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


def login_wait_from_rows(
    rows: Iterable[Sequence[Any]], limits: Sequence[LoginLimit], window_ms: int, now: int
) -> int:
    """How long until every key is under its limit again (0: an attempt may be made now)."""
    allowed = {limit.key: limit.max_attempts for limit in limits}
    wait = 0
    for key, failures, window_start_ms in rows:
        window_end = window_start_ms + window_ms
        if failures >= allowed[key] and window_end > now:
            wait = max(wait, window_end - now)
    return wait


def login_failures_sql(limits: Sequence[LoginLimit]) -> str:
    return LOGIN_FAILURES.format(", ".join("?" * len({limit.key for limit in limits})))


class Storage(ABC):
    """The receiver's database, whichever backend: one instance per app (per worker)."""

    #: A short name for logs and messages: "sqlite" or "postgresql".
    backend: str = ""
    #: Every exception the driver raises; the app answers outages among them with 503.
    errors: tuple[type[Exception], ...] = ()

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def write(self, lock: Optional[WriteLock] = None) -> AbstractContextManager[Session]:
        """A write transaction: everything in the block is stored, or nothing is. A wait
        for the database longer than busy_timeout_ms raises one of `errors` (an outage)."""

    @abstractmethod
    def read(self, sql: str, params: Params = ()) -> list[Any]:
        """The rows of one read-only statement."""

    @abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; safe when several workers start at once."""

    @abstractmethod
    def probe_write(self) -> int:
        """Prove the database takes a write now; returns the schema version."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection (at shutdown, or at the end of a test)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data is, for messages (never a password)."""

    @abstractmethod
    def is_outage(self, exc: BaseException) -> bool:
        """Whether a driver error means 'retry later' (503), not a bug (500)."""

    @abstractmethod
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

    def _reading_index(
        self,
        device_id: Optional[str],
        sensor: Optional[str],
        start_ms: Optional[int],
        end_ms: Optional[int],
    ) -> str:
        """An index hint for a readings query (SQLite needs one; see sqlite.reading_index)."""
        return ""

    def _insert_rows(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert reading rows (INSERT_READING's columns) in order; returns how many were new."""
        return session.executemany(INSERT_READING, rows)

    # -- readings -------------------------------------------------------------------------

    def insert_readings(
        self,
        readings: Sequence[NewReading],
        received_at_ms: Optional[int] = None,
        *,
        seen_collectd_node: Optional[str] = None,
    ) -> InsertResult:
        """Store a batch in one transaction, all or nothing; what is stored already is a
        duplicate, counted but not stored again (see _insert_numbered, _insert_unnumbered).

        seen_collectd_node: a node that sends collectd and maybe no heartbeat, marked as seen
        in the same transaction, so one POST is one commit; a no-op for a node that sends
        heartbeats (TOUCH_NODE_FROM_COLLECTD)."""
        received = now_ms() if received_at_ms is None else received_at_ms
        numbered = [reading for reading in readings if reading.seq is not None]
        unnumbered = [reading for reading in readings if reading.seq is None]
        with self.write(WriteLock.READINGS) as session:
            accepted = self._insert_numbered(session, numbered, received)
            accepted += self._insert_unnumbered(session, unnumbered, received)
            if seen_collectd_node is not None:
                session.execute(TOUCH_NODE_FROM_COLLECTD, (seen_collectd_node, received))
        return InsertResult(accepted=accepted, duplicates=len(readings) - accepted)

    def _insert_numbered(
        self, session: Session, readings: Sequence[NewReading], received: int
    ) -> int:
        """The sender's own seqs (an agent's, 1 and up): a (device_id, seq) already stored,
        or twice in the batch, is a duplicate and the first stored copy wins. Returns how
        many were new."""
        if not readings:
            return 0
        sensors = {(r.device_id, r.sensor): r.sensor_type for r in readings}
        accepted = self._insert_rows(session, [(*reading, received) for reading in readings])
        session.executemany(
            UPSERT_SENSOR, [(d, s, t, received, received) for (d, s), t in sensors.items()]
        )
        return accepted

    def _insert_unnumbered(
        self, session: Session, readings: Sequence[NewReading], received: int
    ) -> int:
        """Readings whose sender has no seq and never retries (collectd): numbered here,
        inside the caller's write transaction, downwards from -1 per device.

        The write lock serialises the numbering, and the range never meets the agents'
        seqs (1 and up), so their exactly-once path is untouched even on a shared device id.
        With no seq to compare, a reading whose device, sensor, time, type and payload are
        stored already (or earlier in the batch) is the duplicate. Returns how many were new.
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
            if session.execute(ALREADY_STORED, identity).fetchone() is None:
                new.setdefault(reading.device_id, []).append(reading)
        for device_id, fresh in new.items():
            lowest = session.execute(LOWEST_SEQ, (device_id,)).fetchone()[0]
            first = min(int(lowest or 0), 0) - 1
            if first - len(fresh) < INT64_MIN:
                raise ValueError(f"{device_id!r} has used up the receiver-assigned seq range")
            self._insert_rows(
                session,
                [
                    (*reading._replace(seq=first - offset), received)
                    for offset, reading in enumerate(fresh)
                ],
            )
            sensors = {reading.sensor: reading.sensor_type for reading in fresh}
            session.executemany(
                UPSERT_SENSOR,
                [(device_id, s, sensors[s], received, received) for s in sorted(sensors)],
            )
        return sum(len(fresh) for fresh in new.values())

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
        where = " AND ".join(clauses) if clauses else "TRUE"
        index = self._reading_index(device_id, sensor, start_ms, end_ms)
        sql = f"SELECT {READING_COLUMNS} FROM readings {index} WHERE {where} ORDER BY id LIMIT ?"
        rows = self.read(sql, [*params, limit + 1])
        next_cursor = int(rows[limit - 1][0]) if len(rows) > limit else None
        return [reading_dict(row) for row in rows[:limit]], next_cursor

    def latest_readings(self, device_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The newest readings of every sensor (of one device's sensors): one per agent
        sensor; for a collectd plugin instance, the newest of each of its value lists."""
        params: tuple[str, ...] = ()
        sql = LATEST_READINGS + " ORDER BY s.device_id, s.sensor, r.ts_ms, r.id"
        if device_id is not None:
            sql = LATEST_READINGS + " WHERE s.device_id = ? ORDER BY s.sensor, r.ts_ms, r.id"
            params = (device_id,)
        newest: dict[tuple[Any, ...], dict[str, Any]] = {}  # later rows replace earlier ones
        for row in self.read(sql, params):
            reading = reading_dict(row)
            key: tuple[Any, ...] = (reading["device_id"], reading["sensor"])
            if reading["sensor_type"] == "collectd":  # a value list: {"type-instance": {...}}
                key += tuple(sorted(reading["payload"]))
            newest.pop(key, None)
            newest[key] = reading
        return sorted(newest.values(), key=lambda r: (r["device_id"], r["sensor"]))

    def count_readings(self) -> int:
        """How many readings are stored (the tests' and the copy command's check)."""
        return int(self.read("SELECT COUNT(*) FROM readings")[0][0])

    def readings_after(self, after_id: int, limit: int) -> list[tuple[Any, ...]]:
        """Stored rows in stored order, for copying a database: (id, device_id, seq, sensor,
        sensor_type, timestamp, ts_ms, payload, received_at_ms)."""
        return [
            tuple(row)
            for row in self.read(
                "SELECT id, device_id, seq, sensor, sensor_type, timestamp, ts_ms, payload,"
                " received_at_ms FROM readings WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    def copy_readings(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store rows from readings_after of another database, keeping (device_id, seq) and
        received_at; a reading stored already is skipped. Returns how many were new."""
        if not rows:
            return 0
        with self.write(WriteLock.READINGS) as session:
            accepted = self._insert_rows(session, [tuple(row[1:]) for row in rows])
            sensors: dict[tuple[str, str], tuple[str, int, int]] = {}
            for row in rows:
                key = (row[1], row[3])
                first, last = sensors.get(key, ("", row[8], row[8]))[1:]
                sensors[key] = (row[4], min(first, row[8]), max(last, row[8]))
            session.executemany(
                UPSERT_SENSOR, [(d, s, t, f, last) for (d, s), (t, f, last) in sensors.items()]
            )
        return accepted

    def node_table(self) -> list[tuple[Any, ...]]:
        """Every node row as stored (NODE_COLUMNS), for copying a database."""
        return [tuple(row) for row in self.read(f"SELECT {NODE_COLUMNS} FROM nodes")]

    def copy_nodes(self, rows: Sequence[Sequence[Any]]) -> None:
        """Store node rows from node_table of another database; they replace what is here."""
        names = [name.strip() for name in NODE_COLUMNS.split(",")]
        updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
        with self.write() as session:
            session.executemany(
                f"INSERT INTO nodes ({NODE_COLUMNS}) VALUES ({', '.join('?' * len(names))})"
                f" ON CONFLICT (node_id) DO UPDATE SET {updates}",
                [tuple(row) for row in rows],
            )

    def telemetry_after(self, after_id: int, limit: int) -> list[tuple[Any, ...]]:
        """Heartbeat events in stored order, for copying a database: (id, node_id,
        TELEMETRY_COLUMNS...)."""
        return [
            tuple(row)
            for row in self.read(
                f"SELECT id, node_id, {TELEMETRY_COLUMNS} FROM telemetry_events"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    def copy_telemetry(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store events from telemetry_after of another database, each node's only when
        received after its newest event here (so a second copy adds only what is new)."""
        newest: dict[str, int] = {}
        fresh = []
        for row in rows:
            node_id = row[1]
            if node_id not in newest:
                found = self.read(
                    "SELECT MAX(received_at_ms) FROM telemetry_events WHERE node_id = ?",
                    (node_id,),
                )
                newest[node_id] = -1 if found[0][0] is None else int(found[0][0])
            if row[2] > newest[node_id]:
                fresh.append(tuple(row[1:]))
        if fresh:
            with self.write() as session:
                session.executemany(
                    f"INSERT INTO telemetry_events (node_id, {TELEMETRY_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    fresh,
                )
        return len(fresh)

    # -- nodes ----------------------------------------------------------------------------

    def record_heartbeat(
        self,
        heartbeat: Heartbeat,
        received_at_ms: Optional[int] = None,
        keep_events_ms: Optional[int] = None,
    ) -> None:
        """Keep the heartbeat as an event and make it the node's current state.

        Events of this node older than keep_events_ms are deleted in the same transaction,
        a few rows at a time, so a reporting node's history needs no separate clean-up; the
        retention pass (retention.py) reaches nodes that stopped reporting.
        """
        received = now_ms() if received_at_ms is None else received_at_ms
        values = {**heartbeat._asdict(), "received_at_ms": received}
        with self.write() as session:
            session.execute(
                INSERT_TELEMETRY, {k: v for k, v in values.items() if k != "queue_depth"}
            )
            session.execute(UPSERT_NODE_FROM_HEARTBEAT, values)
            if keep_events_ms is not None:
                session.execute(
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
        with self.write() as session:
            session.execute(UPSERT_NODE_FROM_REGISTRATION, values)

    def node_rows(self) -> list[dict[str, Any]]:
        """Every node that ever registered or sent a heartbeat, by node_id."""
        rows = self.read(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id")
        return [node_dict(row) for row in rows]

    def node_row(self, node_id: str) -> Optional[dict[str, Any]]:
        rows = self.read(f"SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = ?", (node_id,))
        return node_dict(rows[0]) if rows else None

    def telemetry_events(self, node_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A node's most recent heartbeats, newest first."""
        rows = self.read(
            f"SELECT {TELEMETRY_COLUMNS} FROM telemetry_events"
            " WHERE node_id = ? ORDER BY received_at_ms DESC, id DESC LIMIT ?",
            (node_id, limit),
        )
        return [telemetry_dict(row) for row in rows]

    def heartbeat_times(
        self, node_id: str, start_ms: int, end_ms: int, limit: int
    ) -> tuple[Optional[int], list[int]]:
        """When a node's heartbeats arrived: the last one before start_ms (None if none is
        kept), and up to `limit` from start_ms to end_ms, oldest first (epoch ms). Both
        read the (node_id, received_at_ms) index."""
        before = self.read(
            "SELECT received_at_ms FROM telemetry_events WHERE node_id = ? AND received_at_ms < ?"
            " ORDER BY received_at_ms DESC LIMIT 1",
            (node_id, start_ms),
        )
        rows = self.read(
            "SELECT received_at_ms FROM telemetry_events"
            " WHERE node_id = ? AND received_at_ms >= ? AND received_at_ms <= ?"
            " ORDER BY received_at_ms LIMIT ?",
            (node_id, start_ms, end_ms, limit),
        )
        return (int(before[0][0]) if before else None), [int(row[0]) for row in rows]

    # -- dashboard logins -----------------------------------------------------------------

    def start_login(self, id_hash: str, login: DashboardLogin, forget_before_ms: int) -> None:
        """Record a new login; logins started before forget_before_ms (their cookies have
        expired anyway) are deleted in the same transaction."""
        with self.write() as session:
            session.execute(
                "DELETE FROM dashboard_logins WHERE started_at_ms < ?", (forget_before_ms,)
            )
            session.execute(
                "INSERT INTO dashboard_logins"
                " (id_hash, username, password_fingerprint, started_at_ms) VALUES (?, ?, ?, ?)",
                (id_hash, *login),
            )

    def dashboard_login(self, id_hash: str) -> Optional[DashboardLogin]:
        """The login with this id hash, unless it was ended (one primary-key probe)."""
        rows = self.read(
            "SELECT username, password_fingerprint, started_at_ms FROM dashboard_logins"
            " WHERE id_hash = ?",
            (id_hash,),
        )
        return DashboardLogin(*rows[0]) if rows else None

    def end_login(self, id_hash: str) -> None:
        with self.write() as session:
            session.execute("DELETE FROM dashboard_logins WHERE id_hash = ?", (id_hash,))

    # -- login throttling -----------------------------------------------------------------

    def login_wait_ms(self, limits: Sequence[LoginLimit], window_ms: int, now: int) -> int:
        """How long these keys must wait before another attempt (0: none); reads only."""
        rows = self.read(login_failures_sql(limits), list({limit.key: 0 for limit in limits}))
        return login_wait_from_rows(rows, limits, window_ms, now)

    def count_login_attempt(self, limits: Sequence[LoginLimit], window_ms: int, now: int) -> int:
        """Count an attempt against every key, unless one is at its limit: then count nothing
        and return how long to wait. Counted before the password is checked, in one write
        transaction, so concurrent attempts in several workers cannot overshoot a limit.
        Windows that have ended are deleted on the way."""
        with self.write(WriteLock.LOGINS) as session:
            keys = list({limit.key: 0 for limit in limits})
            rows = session.execute(login_failures_sql(limits), keys).fetchall()
            wait = login_wait_from_rows(rows, limits, window_ms, now)
            if wait:
                return wait
            session.execute(
                "DELETE FROM login_failures WHERE window_start_ms <= ?", (now - window_ms,)
            )
            session.executemany(COUNT_LOGIN_ATTEMPT, [(limit.key, now) for limit in limits])
            return 0

    def forgive_login_attempt(self, cleared_key: str, counted_key: str) -> None:
        """After a good password: cleared_key (the user) starts afresh, and counted_key (the
        address) gets back the attempt that turned out not to be a failure."""
        with self.write(WriteLock.LOGINS) as session:
            session.execute("DELETE FROM login_failures WHERE key = ?", (cleared_key,))
            session.execute(
                "UPDATE login_failures SET failures = failures - 1 WHERE key = ? AND failures > 0",
                (counted_key,),
            )

    # -- retention ------------------------------------------------------------------------

    def prune_readings(self, before_ms: int, batch_rows: int) -> int:
        """Delete up to batch_rows readings timestamped before before_ms, oldest first, in
        one short transaction (ingest waits at most that long); returns how many went."""
        with self.write() as session:
            return session.execute(PRUNE_READINGS, (before_ms, batch_rows)).rowcount

    def prune_telemetry(self, before_ms: int, batch_rows: int) -> int:
        """Delete up to batch_rows heartbeat events received before before_ms, node by node
        (one short transaction per node); returns how many went."""
        deleted = 0
        for (node_id,) in self.read("SELECT node_id FROM nodes ORDER BY node_id"):
            if deleted >= batch_rows:
                break
            if not self.read(OLD_NODE_TELEMETRY, (node_id, before_ms)):
                continue  # most nodes: one index probe, no write transaction
            with self.write() as session:
                deleted += session.execute(
                    PRUNE_NODE_TELEMETRY, (node_id, before_ms, batch_rows - deleted)
                ).rowcount
        return deleted

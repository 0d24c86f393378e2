"""PostgreSQL storage (psycopg 3 and psycopg-pool): the same contract as SQLite's.

Imported only when receiver.toml's `database` is a postgresql:// URL, so a SQLite receiver
needs neither driver. The shared logic is in base.py; here are the connections (a pool per
worker process), transactions, the versioned schema and the statements PostgreSQL spells
its own way.

What keeps the contract equal to SQLite's, where PostgreSQL would otherwise differ:

* Text columns that are keys or sorted on use the "C" collation, so ORDER BY device_id
  sorts by bytes as SQLite does, whatever the database's locale.
* Writers of readings take one advisory lock (base.WriteLock), so ids, the paging cursor,
  are committed in the order they were drawn: a page never skips a reading that a slower
  transaction committed later. SQLite gets this from its single writer.
* Waits are bounded by busy_timeout_ms: for a pooled connection, and for any lock
  (`lock_timeout`); either surfaces as psycopg.OperationalError, which the app answers
  with 503 and Retry-After.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Optional, Union

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from beam_receiver.storage.base import Params, Session, Storage, WriteLock
from beam_receiver.storage.records import SchemaTooNewError, payload_path
from beam_receiver.timestamps import format_ms, now_ms

# The same versions as SQLite's migrations, so /healthz reports one schema_version.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "readings, sensors, nodes and telemetry events",
        (
            """CREATE TABLE readings (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                device_id text COLLATE "C" NOT NULL,
                seq bigint NOT NULL,
                sensor text COLLATE "C" NOT NULL,
                sensor_type text COLLATE "C" NOT NULL,
                timestamp text NOT NULL,
                ts_ms bigint NOT NULL,
                payload text NOT NULL,
                received_at_ms bigint NOT NULL,
                UNIQUE (device_id, seq)
            )""",
            "CREATE INDEX readings_sensor_time ON readings (device_id, sensor, ts_ms)",
            "CREATE INDEX readings_device_order ON readings (device_id, id)",
            "CREATE INDEX readings_time ON readings (ts_ms)",
            """CREATE TABLE sensors (
                device_id text COLLATE "C" NOT NULL,
                sensor text COLLATE "C" NOT NULL,
                sensor_type text COLLATE "C" NOT NULL,
                first_received_ms bigint NOT NULL,
                last_received_ms bigint NOT NULL,
                PRIMARY KEY (device_id, sensor)
            )""",
            """CREATE TABLE telemetry_events (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id text COLLATE "C" NOT NULL,
                received_at_ms bigint NOT NULL,
                timestamp text NOT NULL,
                role text,
                uptime_seconds double precision,
                software_version text,
                ip_address text,
                protocol_version bigint,
                metrics text NOT NULL,
                tags text NOT NULL
            )""",
            "CREATE INDEX telemetry_events_node_time ON telemetry_events (node_id, received_at_ms)",
            """CREATE TABLE nodes (
                node_id text COLLATE "C" PRIMARY KEY,
                role text,
                hostname text,
                ip_address text,
                software_version text,
                tags text NOT NULL DEFAULT '{}',
                registered_at_ms bigint,
                last_seen_ms bigint,
                last_heartbeat_timestamp text,
                uptime_seconds double precision,
                protocol_version bigint,
                queue_depth bigint,
                metrics text NOT NULL DEFAULT '{}'
            )""",
            # SQLite's json_extract with a path of keys: a number at the end of a walk
            # through objects only ("values.2" does not index an array), as its JSON text.
            # Stored payloads are text, read as json (not jsonb): json keeps the number's
            # spelling (1.0 stays a float). PostgreSQL cannot look up a key in an object
            # holding the escape \u0000 (NUL is not text to it), so that escape becomes
            # \u0001 first: it only ever occurs inside strings, and the query string's
            # field names cannot hold control characters, so no number changes.
            """CREATE FUNCTION beam_payload_number(payload text, path text[])
            RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
            DECLARE
                doc json := replace(payload, '\\u0000', '\\u0001')::json;
                part text;
            BEGIN
                FOREACH part IN ARRAY path LOOP
                    IF json_typeof(doc) IS DISTINCT FROM 'object' THEN
                        RETURN NULL;
                    END IF;
                    doc := doc -> part;
                END LOOP;
                IF json_typeof(doc) = 'number' THEN
                    RETURN doc::text;
                END IF;
                RETURN NULL;
            END
            $$""",
        ),
    ),
    (
        2,
        "index one device's readings by time",
        ("CREATE INDEX readings_device_time ON readings (device_id, ts_ms)",),
    ),
    (
        3,
        "dashboard logins, failed-login counts and the health probe's row",
        (
            """CREATE TABLE dashboard_logins (
                id_hash text COLLATE "C" PRIMARY KEY,
                username text NOT NULL,
                password_fingerprint text NOT NULL,
                started_at_ms bigint NOT NULL
            )""",
            "CREATE INDEX dashboard_logins_started ON dashboard_logins (started_at_ms)",
            """CREATE TABLE login_failures (
                key text COLLATE "C" PRIMARY KEY,
                failures bigint NOT NULL,
                window_start_ms bigint NOT NULL
            )""",
            "CREATE INDEX login_failures_window ON login_failures (window_start_ms)",
            """CREATE TABLE health_probe (
                id integer PRIMARY KEY CHECK (id = 1),
                written_at_ms bigint NOT NULL,
                room bytea
            )""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
# Held for the whole migration transaction: receivers that start together migrate in turn.
MIGRATION_LOCK = 0x6265_616D_0000
# A pooled connection idle longer than this is asked (an empty query) before a request gets
# it: the server may have closed it meanwhile (a restart, a network cut). One that is in
# steady use is not asked, so a busy receiver pays nothing for it.
IDLE_CHECK_S = 2.0
# libpq settings that notice a silent peer: TCP keepalives after 10 s idle, 3 probes 5 s
# apart, and unacknowledged data given up after 20 s; connecting gives up after 5 s.
DEAD_PEER_SETTINGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20000,
}

# All rows of a batch in one statement, in batch order: the first copy of a (device_id,
# seq) wins, later ones count as duplicates, and ids follow the batch.
INSERT_READINGS_UNNEST = """
    INSERT INTO readings
        (device_id, seq, sensor, sensor_type, timestamp, ts_ms, payload, received_at_ms)
    SELECT device_id, seq, sensor, sensor_type, timestamp, ts_ms, payload, received_at_ms
    FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                %s::text[], %s::bigint[])
        WITH ORDINALITY AS batch (device_id, seq, sensor, sensor_type, timestamp, ts_ms,
                                  payload, received_at_ms, position)
    ORDER BY position
    ON CONFLICT (device_id, seq) DO NOTHING
"""
# min and max keep the type of the value they are: an integer stays an integer, 1.0 a float,
# as SQLite's MIN and MAX do. So each bucket's extreme is found with its JSON spelling.
SERIES = """
    SELECT bucket_start, COUNT(*), MIN(number), MAX(number), AVG(number::float8),
           bool_or(is_integer) FILTER (WHERE number = lowest),
           bool_or(is_integer) FILTER (WHERE number = highest)
    FROM (
        SELECT bucket_start, number, is_integer,
               MIN(number) OVER bucket AS lowest, MAX(number) OVER bucket AS highest
        FROM (
            SELECT (ts_ms / %(bucket_ms)s) * %(bucket_ms)s AS bucket_start,
                   value::numeric AS number, value !~ '[.eE]' AS is_integer
            FROM (
                SELECT ts_ms, beam_payload_number(payload, %(path)s::text[]) AS value
                FROM readings
                WHERE device_id = %(device_id)s AND sensor = %(sensor)s
                  AND ts_ms >= %(start_ms)s AND ts_ms < %(end_ms)s
            ) AS extracted
            WHERE value IS NOT NULL
        ) AS numbers
        WINDOW bucket AS (PARTITION BY bucket_start)
    ) AS ranked
    GROUP BY bucket_start
    ORDER BY bucket_start
"""
WRITE_HEALTH_PROBE = """
    INSERT INTO health_probe (id, written_at_ms, room) VALUES (1, %s, %s)
    ON CONFLICT (id) DO UPDATE SET written_at_ms = excluded.written_at_ms, room = excluded.room
"""
# Random bytes, so the write cannot be skipped and needs that much room.
HEALTH_PROBE_BYTES = 32 * 1024
# Retention's batches skip rows another worker's batch is deleting, so two workers pruning
# at once share the work instead of waiting on each other's row locks.
PRUNE_READINGS = """
    DELETE FROM readings WHERE id IN (
        SELECT id FROM readings WHERE ts_ms < %s ORDER BY ts_ms LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=256)
def to_pyformat(sql: str) -> str:
    """base.py's statements (`?`, `:name`) in psycopg's placeholders (`%s`, `%(name)s`)."""
    if "%" in sql:
        raise ValueError("a statement for both backends must not contain '%'")
    return _NAMED.sub(r"%(\1)s", sql).replace("?", "%s")


def _number(value: Optional[Decimal], is_integer: Optional[bool]) -> Union[int, float, None]:
    if value is None:
        return None
    return int(value) if is_integer else float(value)


class PostgresSession:
    """A pooled connection inside a transaction, as base.Session."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Params = ()) -> psycopg.Cursor[Any]:
        return self.connection.execute(to_pyformat(sql), params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        with self.connection.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), list(rows))
            return cursor.rowcount


class PostgresStorage(Storage):
    """The receiver's PostgreSQL database: a connection pool per process (opened at first
    use, so a process that only migrates opens none), explicit transactions."""

    backend = "postgresql"
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        password: Optional[str] = None,
        busy_timeout_ms: int = 5000,
        max_connections: int = 5,
    ) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.max_connections = max_connections
        # lock_timeout 0 would mean "wait for ever": the smallest real wait instead.
        lock_timeout_ms = max(1, busy_timeout_ms)
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": "beam-receiver",
            "options": f"-c lock_timeout={lock_timeout_ms}",
        }
        # A connection whose server went silent (a network cut, a host gone) must fail in
        # seconds, not after the kernel's 15 minutes of retransmissions: it is dropped from
        # the pool and the request answers 503, which agents retry. The URL may say otherwise.
        given = conninfo_to_dict(url)
        for key, value in DEAD_PEER_SETTINGS.items():
            if key not in given:
                self._connect_kwargs[key] = value
        if password is not None:
            self._connect_kwargs["password"] = password
        self._pool: Optional[ConnectionPool[Any]] = None
        self._pool_lock = threading.Lock()
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def describe(self) -> str:
        return self.url

    def is_outage(self, exc: BaseException) -> bool:
        """Connection refused or lost, pool or lock wait over, disk full, server shutting
        down, a read-only standby: retry later. Anything else is a bug (500)."""
        return isinstance(exc, (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction))

    def _connection_pool(self) -> ConnectionPool[Any]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    kwargs=self._connect_kwargs,
                    min_size=1,
                    max_size=self.max_connections,
                    timeout=max(0.001, self.busy_timeout_ms / 1000),
                    name="beam-receiver",
                    check=self._check_if_idle,
                    reset=self._note_return,
                    open=True,
                )
            return self._pool

    def _check_if_idle(self, connection: psycopg.Connection[Any]) -> None:
        """Raises (the pool then drops it and gives another) when an idle connection is dead."""
        returned = self._returned_at.get(connection)
        if returned is None or time.monotonic() - returned > IDLE_CHECK_S:
            ConnectionPool.check_connection(connection)

    def _note_return(self, connection: psycopg.Connection[Any]) -> None:
        self._returned_at[connection] = time.monotonic()

    def connect(self) -> psycopg.Connection[Any]:
        """One connection outside the pool (migrations, the copy command's checks)."""
        return psycopg.connect(self.url, **self._connect_kwargs)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def read(self, sql: str, params: Params = ()) -> list[Any]:
        with self._connection_pool().connection() as connection:
            rows: list[Any] = connection.execute(to_pyformat(sql), params).fetchall()
            return rows

    @contextmanager
    def write(self, lock: Optional[WriteLock] = None) -> Iterator[Session]:
        with self._transaction(lock) as connection:
            yield PostgresSession(connection)

    @contextmanager
    def _transaction(self, lock: Optional[WriteLock] = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, with `lock` held until it ends."""
        with self._connection_pool().connection() as connection, connection.transaction():
            if lock is not None:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (int(lock),))
            yield connection

    def _insert_rows(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        assert isinstance(session, PostgresSession)
        columns = [list(column) for column in zip(*rows)]
        return session.connection.execute(INSERT_READINGS_UNNEST, columns).rowcount

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema in one transaction, under an advisory lock, so that
        receivers starting together migrate one after the other and agree."""
        with self.connect() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, description text NOT NULL,"
                " applied_at text NOT NULL)"
            )
            row = connection.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.url} has schema version {current}; this beam-receiver knows"
                    f" versions up to {SCHEMA_VERSION}: upgrade beam-receiver"
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (version, description, format_ms(now_ms())),
                )
            return max(current, SCHEMA_VERSION)

    def probe_write(self) -> int:
        """Rewrite the one health_probe row; returns the schema version.

        Proves what storing readings needs: a pooled connection and a write within
        busy_timeout_ms, and room for HEALTH_PROBE_BYTES. The probe commits without waiting
        for its WAL flush (synchronous_commit off): its row need not survive a crash.
        """
        with self._transaction() as connection:
            connection.execute("SET LOCAL synchronous_commit = off")
            connection.execute(WRITE_HEALTH_PROBE, (now_ms(), os.urandom(HEALTH_PROBE_BYTES)))
            row = connection.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        if row is None or row[0] is None:
            raise psycopg.DatabaseError("the database has no schema version")
        return int(row[0])

    def series(
        self,
        device_id: str,
        sensor: str,
        field: str,
        bucket_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> list[dict[str, Any]]:
        with self._connection_pool().connection() as connection:
            rows = connection.execute(
                SERIES,
                {
                    "bucket_ms": bucket_ms,
                    "path": payload_path(field),
                    "device_id": device_id,
                    "sensor": sensor,
                    "start_ms": start_ms,
                    "end_ms": end_ms,
                },
            ).fetchall()
        return [
            {
                "start_ms": int(row[0]),
                "count": int(row[1]),
                "min": _number(row[2], row[5]),
                "max": _number(row[3], row[6]),
                "avg": float(row[4]),
            }
            for row in rows
        ]

    def prune_readings(self, before_ms: int, batch_rows: int) -> int:
        with self._transaction() as connection:
            return connection.execute(PRUNE_READINGS, (before_ms, batch_rows)).rowcount

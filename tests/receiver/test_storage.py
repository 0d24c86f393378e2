"""The SQLite layer on its own: schema, migrations, dedupe, atomic batches, query plans."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from beam_receiver.storage import (
    LATEST_READINGS,
    READING_COLUMNS,
    SCHEMA_VERSION,
    SERIES,
    Database,
    NewReading,
    SchemaTooNewError,
    json_path,
    reading_index,
)

from tests.support.receiver import stored_count


def row(seq: int, device: str = "d1", sensor: str = "s1", ts_ms: int = 0) -> NewReading:
    return NewReading(
        device_id=device,
        seq=seq,
        sensor=sensor,
        sensor_type="virtual",
        timestamp="2026-02-15T19:06:00Z",
        ts_ms=ts_ms or 1_771_182_360_000 + seq * 1000,
        payload=json.dumps({"value": seq}),
    )


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "data" / "receiver.db", busy_timeout_ms=200)
    db.migrate()
    yield db
    db.close()


def test_migrate_creates_schema_in_wal_mode(database: Database) -> None:
    assert database.journal_mode() == "wal"
    assert database.probe_write() == SCHEMA_VERSION
    connection = database.connection()
    versions = connection.execute("SELECT version, description FROM schema_migrations").fetchall()
    assert [v for v, _ in versions] == list(range(1, SCHEMA_VERSION + 1))
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    assert {"readings", "sensors", "nodes", "telemetry_events"} <= tables


def test_migrate_twice_changes_nothing(database: Database) -> None:
    database.insert_readings([row(1)])
    assert database.migrate() == SCHEMA_VERSION
    assert stored_count(database.path) == 1
    count = database.connection().execute("SELECT COUNT(*) FROM schema_migrations").fetchone()
    assert count[0] == SCHEMA_VERSION


def test_workers_migrating_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            Database(path, busy_timeout_ms=10_000).migrate()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert Database(path).probe_write() == SCHEMA_VERSION


def test_newer_schema_is_refused(database: Database) -> None:
    database.connection().execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (SCHEMA_VERSION + 1,)
    )
    with pytest.raises(SchemaTooNewError, match="upgrade beam-receiver"):
        database.migrate()


def test_duplicates_are_counted_not_stored(database: Database) -> None:
    first = database.insert_readings([row(1), row(2), row(3)])
    assert (first.accepted, first.duplicates) == (3, 0)
    again = database.insert_readings([row(2), row(3), row(4), row(4)])
    assert (again.accepted, again.duplicates) == (1, 3)
    assert stored_count(database.path) == 4


def test_a_failing_batch_stores_nothing(database: Database) -> None:
    database.insert_readings([row(1)])
    bad = row(3)._replace(payload=None)  # type: ignore[arg-type]  # NOT NULL fails mid-batch
    with pytest.raises(sqlite3.IntegrityError):
        database.insert_readings([row(2), bad, row(4)])
    assert stored_count(database.path) == 1
    assert database.insert_readings([row(2)]).accepted == 1  # the connection still works


def test_writer_waits_for_a_lock_then_fails_cleanly(database: Database) -> None:
    blocker = sqlite3.connect(database.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            database.insert_readings([row(1)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert not database.connection().in_transaction
    assert database.insert_readings([row(1)]).accepted == 1


def test_the_write_probe_does_not_create_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        Database(tmp_path / "missing.db").probe_write()
    assert not (tmp_path / "missing.db").exists()


def test_series_rounds_buckets_to_the_epoch(database: Database) -> None:
    database.insert_readings([row(seq, ts_ms=seq * 20_000) for seq in range(1, 10)])
    buckets = database.series("d1", "s1", "value", 60_000, 0, 10**9)
    assert [(b["start_ms"], b["count"], b["min"], b["max"]) for b in buckets] == [
        (0, 2, 1, 2),
        (60_000, 3, 3, 5),
        (120_000, 3, 6, 8),
        (180_000, 1, 9, 9),
    ]


def test_json_path_quotes_each_part() -> None:
    assert json_path("cpm") == '$."cpm"'
    assert json_path("env.temp c") == '$."env"."temp c"'
    for bad in ("", "a..b", '"', "a.", 'x"y'):
        with pytest.raises(ValueError):
            json_path(bad)


def plan(database: Database, sql: str, params: object) -> str:
    rows = database.connection().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(str(r[3]) for r in rows)


@pytest.mark.parametrize(
    ("where", "params", "index"),
    [
        ("device_id = ?", ("d1",), "readings_device_order"),
        ("device_id = ? AND sensor = ?", ("d1", "s1"), "readings_device_order"),
        ("device_id = ? AND id > ?", ("d1", 5), "readings_device_order"),
        (
            "device_id = ? AND sensor = ? AND ts_ms >= ? AND ts_ms < ?",
            ("d1", "s1", 0, 1),
            "readings_sensor_time",
        ),
        ("ts_ms >= ? AND ts_ms < ?", (0, 1), "readings_time"),
    ],
)
def test_reading_queries_use_an_index(
    database: Database, where: str, params: tuple[object, ...], index: str
) -> None:
    """No listed query walks the whole table: each is a search on an index."""
    sql = f"SELECT {READING_COLUMNS} FROM readings WHERE {where} ORDER BY id LIMIT 101"
    text = plan(database, sql, params)
    assert index in text
    assert "SCAN readings" not in text


def test_latest_and_series_use_the_sensor_time_index(database: Database) -> None:
    latest = plan(database, LATEST_READINGS + " WHERE s.device_id = ?", ("d1",))
    assert "readings_sensor_time" in latest and "SCAN readings" not in latest
    series = plan(
        database,
        SERIES,
        {
            "bucket_ms": 60_000,
            "path": '$."v"',
            "device_id": "d1",
            "sensor": "s1",
            "start_ms": 0,
            "end_ms": 1,
        },
    )
    assert "readings_sensor_time" in series and "SCAN readings" not in series


def test_unique_device_seq_index_exists(database: Database) -> None:
    indexes = database.connection().execute("PRAGMA index_list(readings)").fetchall()
    unique = [name for _, name, is_unique, *_ in indexes if is_unique]
    columns = [
        [c[2] for c in database.connection().execute(f"PRAGMA index_info('{name}')")]
        for name in unique
    ]
    assert ["device_id", "seq"] in columns


def test_a_device_time_window_reads_the_window_not_the_history(database: Database) -> None:
    database.insert_readings([row(seq) for seq in range(1, 2001)])
    start = 1_771_182_360_000 + 1500 * 1000
    page, cursor = database.query_readings(device_id="d1", start_ms=start, limit=100)
    assert [r["seq"] for r in page] == list(range(1500, 1600))
    assert cursor is not None
    page, _ = database.query_readings(device_id="d1", start_ms=start, limit=100, after_id=cursor)
    assert page[0]["seq"] == 1600

    connection = database.connection()
    for sensor, index in ((None, "readings_device_time"), ("s1", "readings_sensor_time")):
        clauses = "device_id = ? AND ts_ms >= ?" + (" AND sensor = ?" if sensor else "")
        params = ["d1", start] + ([sensor] if sensor else [])
        plan = connection.execute(
            f"EXPLAIN QUERY PLAN SELECT {READING_COLUMNS} FROM readings "
            f"{reading_index('d1', sensor, start, None)} WHERE {clauses} ORDER BY id LIMIT 10",
            params,
        ).fetchall()
        details = " ".join(str(step[-1]) for step in plan)
        assert f"USING INDEX {index} (device_id=? AND " in details, details

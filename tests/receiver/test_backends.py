"""The storage contract on both backends, and what only PostgreSQL needs checked.

Every storage-touching API test already runs on SQLite and PostgreSQL (conftest.py). Here:
the same answers from both for the same data (series number types, sort order), retention
in batches, the copy from SQLite into PostgreSQL, PostgreSQL's migrations under concurrency,
its write locks, its query plans and its outages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest

from beam_receiver.config import load_config
from beam_receiver.retention import Cutoffs, Pruner, prune
from beam_receiver.storage import (
    ALREADY_STORED,
    LOWEST_SEQ,
    SCHEMA_VERSION,
    Database,
    Heartbeat,
    NewReading,
    SchemaTooNewError,
    Storage,
    WriteLock,
)
from beam_receiver.storage.postgres import PostgresStorage
from beam_receiver.timestamps import now_ms
from beam_receiver.transfer import copy_database

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.postgres import PASSWORD, PostgresServer
from tests.support.responses import assert_error

DAY_MS = 86_400_000
NOW_MS = 1_771_182_360_000  # 2026-02-15T19:06:00Z


def reading(
    seq: Any, device: str = "d1", sensor: str = "s1", ts_ms: int = NOW_MS, **payload: Any
) -> NewReading:
    return NewReading(
        device_id=device,
        seq=seq,
        sensor=sensor,
        sensor_type="virtual",
        timestamp="2026-02-15T19:06:00Z",
        ts_ms=ts_ms,
        payload=json.dumps(payload or {"value": seq}, separators=(",", ":")),
    )


def heartbeat(node_id: str = "d1") -> Heartbeat:
    return Heartbeat(node_id, "2026-02-15T19:06:00Z", "agent", 1.5, "0.2.0", None, 1, 0, "{}", "{}")


@pytest.fixture
def make_storage(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Storage]]:
    """Migrated storages of this test's backend, each on a database of its own."""
    opened: list[Storage] = []
    server: PostgresServer | None = (
        request.getfixturevalue("postgres_server") if backend == "postgres" else None
    )
    created: list[str] = []

    def make(busy_timeout_ms: int = 5000) -> Storage:
        storage: Storage
        if server is None:
            storage = Database(tmp_path / f"db-{len(opened)}.sqlite", busy_timeout_ms)
        else:
            created.append(server.create_database())
            storage = PostgresStorage(server.url(created[-1]), PASSWORD, busy_timeout_ms)
        storage.migrate()
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()
    for name in created:
        assert server is not None
        server.drop_database(name)


@pytest.fixture
def storage(make_storage: Callable[..., Storage]) -> Storage:
    return make_storage()


@pytest.fixture
def both(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[tuple[Storage, Storage]]:
    """A SQLite and a PostgreSQL storage, to compare their answers."""
    name = postgres_server.create_database()
    sqlite = Database(tmp_path / "compare.sqlite")
    postgres = PostgresStorage(postgres_server.url(name), PASSWORD)
    for storage in (sqlite, postgres):
        storage.migrate()
    yield sqlite, postgres
    sqlite.close()
    postgres.close()
    postgres_server.drop_database(name)


# -- one contract ---------------------------------------------------------------------------


def test_batches_count_duplicates_and_number_collectd_alike(storage: Storage) -> None:
    first = storage.insert_readings([reading(1), reading(2), reading(1), reading(None)])
    again = storage.insert_readings(
        [reading(2), reading(3), reading(None), reading(None, sensor="s2")]
    )
    assert (first.accepted, first.duplicates) == (3, 1)
    assert (again.accepted, again.duplicates) == (2, 2)
    rows, cursor = storage.query_readings(limit=10)
    assert cursor is None
    assert [(r["sensor"], r["seq"]) for r in rows] == [
        ("s1", 1),
        ("s1", 2),
        ("s1", -1),
        ("s1", 3),
        ("s2", -2),
    ]


def test_a_failing_batch_stores_nothing(storage: Storage) -> None:
    too_low = reading(None)._replace(device_id="d9")
    storage.insert_readings([reading(-(2**63) + 1, device="d9")])
    with pytest.raises(ValueError, match="used up"):
        storage.insert_readings([reading(5), too_low, too_low._replace(sensor="s2")])
    assert storage.count_readings() == 1


def test_the_same_data_gives_the_same_answers_on_both(both: tuple[Storage, Storage]) -> None:
    """Series keep each value's JSON type (SQLite's MIN and MAX do), payload paths walk
    objects only, and text sorts by bytes whatever PostgreSQL's locale."""
    batch = [
        reading(1, sensor="a", ts_ms=NOW_MS, v=1, nested={"x": 2.5}, arr=[10, 20, 30]),
        reading(2, sensor="a", ts_ms=NOW_MS + 1, v=1.5, nested={"x": 3}, arr={"2": 7}),
        reading(3, sensor="a", ts_ms=NOW_MS + 2, v=1e20, nested={"x": "text"}, arr=[1]),
        reading(4, sensor="a", ts_ms=NOW_MS + 60_000, v=-0.5, nested=None),
        reading(5, sensor="a", ts_ms=NOW_MS + 60_001, v=7, weird="\u0000\\u0000"),
        reading(6, device="B", sensor="Z"),
        reading(7, device="a", sensor="b"),
        reading(8, device="_", sensor="é"),
    ]
    answers = []
    for storage in both:
        assert storage.insert_readings(batch, NOW_MS).accepted == len(batch)
        series = {
            field: storage.series("d1", "a", field, 60_000, NOW_MS - 60_000, NOW_MS + 120_000)
            for field in ("v", "nested.x", "arr.2", "weird", "missing")
        }
        answers.append(
            (
                series,
                storage.latest_readings(),
                storage.query_readings(limit=3),
                storage.node_rows(),
            )
        )
    assert answers[0] == answers[1]
    series = answers[0][0]
    # Integers stay integers, floats stay floats (1e20 is a float), as JSON text would show.
    assert json.dumps(series["v"]) == json.dumps(answers[1][0]["v"])
    assert [type(b["min"]) for b in series["v"]] == [int, float]
    assert [b["count"] for b in series["arr.2"]] == [1]  # the object's key "2", not arr[2]
    assert series["missing"] == [] and series["weird"] == []
    assert [r["device_id"] for r in answers[0][1]] == ["B", "_", "a", "d1"]


# -- retention ------------------------------------------------------------------------------


def test_prune_deletes_only_old_readings_in_small_batches(storage: Storage) -> None:
    old = [reading(seq, ts_ms=NOW_MS - 40 * DAY_MS + seq) for seq in range(1, 36)]
    new = [reading(seq, ts_ms=NOW_MS - DAY_MS) for seq in range(36, 41)]
    storage.insert_readings(old + new)
    batches: list[int] = []
    delete = storage.prune_readings

    def counted(before_ms: int, batch_rows: int) -> int:
        batches.append(delete(before_ms, batch_rows))
        return batches[-1]

    storage.prune_readings = counted  # type: ignore[method-assign]
    result = prune(storage, Cutoffs(NOW_MS - 30 * DAY_MS, None), batch_rows=10, pause_s=0)
    assert result.readings == 35 and result.telemetry_events == 0
    assert batches == [10, 10, 10, 5]  # one short transaction each
    rows, _ = storage.query_readings(limit=100)
    assert [r["seq"] for r in rows] == list(range(36, 41))
    # A device's seqs stay deduplicated against what is left.
    assert storage.insert_readings([reading(40)]).duplicates == 1


def test_prune_reaches_heartbeats_of_nodes_that_stopped_reporting(storage: Storage) -> None:
    for days_ago in (50, 45, 40, 1):
        storage.record_heartbeat(heartbeat("quiet"), received_at_ms=NOW_MS - days_ago * DAY_MS)
    storage.record_heartbeat(heartbeat("busy"), received_at_ms=NOW_MS - 35 * DAY_MS)
    result = prune(storage, Cutoffs(None, NOW_MS - 30 * DAY_MS), batch_rows=2, pause_s=0)
    assert result == type(result)(readings=0, telemetry_events=4)
    assert len(storage.telemetry_events("quiet")) == 1
    assert storage.telemetry_events("busy") == []
    assert [node["node_id"] for node in storage.node_rows()] == ["busy", "quiet"]  # kept


def test_the_pruner_thread_runs_passes_in_the_worker(storage: Storage, tmp_path: Path) -> None:
    storage.insert_readings([reading(1, ts_ms=1000), reading(2, ts_ms=now_ms())])
    path = tmp_path / "receiver.toml"
    path.write_text('database = "x.db"\ntokens_file = "t"\nreadings_retention_days = 1\n')
    pruner = Pruner(storage, load_config(path), every_s=0.05, first_after_s=0)
    pruner.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if pruner.passes >= 2:
                break
            deadline.wait(0.05)
    finally:
        pruner.close()
    assert pruner.passes >= 2
    assert [r["seq"] for r in storage.query_readings()[0]] == [2]


def test_no_retention_configured_starts_no_thread(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "receiver.toml"
    path.write_text('database = "x.db"\ntokens_file = "t"\ntelemetry_retention_days = 0\n')
    pruner = Pruner(storage, load_config(path), first_after_s=0)
    pruner.start()
    assert not pruner.thread.is_alive()


# -- SQLite to PostgreSQL -------------------------------------------------------------------


def test_copy_keeps_every_reading_once_and_agents_resends_dedupe(
    both: tuple[Storage, Storage],
) -> None:
    sqlite, postgres = both
    assert isinstance(sqlite, Database)
    sqlite.insert_readings([reading(seq, sensor=f"s{seq % 3}") for seq in range(1, 26)])
    sqlite.insert_readings([reading(None, device=DEVICE), reading(None, device=DEVICE, v=2)])
    sqlite.record_heartbeat(heartbeat(), received_at_ms=NOW_MS)
    sqlite.record_heartbeat(heartbeat(), received_at_ms=NOW_MS + 1)
    first = copy_database(sqlite, postgres, batch_rows=7)
    assert (first.readings_read, first.readings_new, first.nodes) == (27, 27, 1)
    assert first.telemetry_events_new == 2
    # More came in before the SQLite receiver stopped: a second copy adds only that.
    sqlite.insert_readings([reading(26)])
    sqlite.record_heartbeat(heartbeat(), received_at_ms=NOW_MS + 2)
    second = copy_database(sqlite, postgres, batch_rows=7)
    assert (second.readings_read, second.readings_new, second.telemetry_events_new) == (28, 1, 1)
    for query in (
        lambda s: [{k: v for k, v in r.items()} for r in s.query_readings(limit=1000)[0]],
        lambda s: s.latest_readings(),
        lambda s: s.node_rows(),
        lambda s: s.telemetry_events("d1"),
        lambda s: s.series("d1", "s1", "value", 60_000, 0, NOW_MS + 1),
    ):
        assert query(sqlite) == query(postgres)
    # An agent re-sending what the old receiver stored: a duplicate, not a second copy.
    assert postgres.insert_readings([reading(26), reading(27)]).duplicates == 1
    # collectd's numbering goes on below what was copied.
    postgres.insert_readings([reading(None, device=DEVICE, v=3)])
    seqs = [r["seq"] for r in postgres.query_readings(device_id=DEVICE)[0]]
    assert seqs == [-1, -2, -3]


# -- PostgreSQL only ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"])
def test_receivers_starting_together_migrate_once(make_storage: Callable[..., Storage]) -> None:
    storage = make_storage()
    assert isinstance(storage, PostgresStorage)
    # A fresh database: drop the template's schema and migrate from nothing, 4 at once.
    with storage.connect() as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    versions: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        other = PostgresStorage(storage.url, PASSWORD)
        try:
            versions.append(other.migrate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 4
    rows = storage.read("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_newer_schema_is_refused(storage: Storage) -> None:
    with storage.write() as session:
        session.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(SchemaTooNewError, match="upgrade beam-receiver"):
        storage.migrate()


@pytest.mark.parametrize("backend", ["postgres"])
def test_readings_writers_take_turns_and_time_out_as_outages(
    make_storage: Callable[..., Storage],
) -> None:
    """Stored order is commit order: a second writer waits for the readings lock, and past
    busy_timeout_ms it gets an outage (503), not a half-written batch."""
    storage = make_storage(busy_timeout_ms=100)
    assert isinstance(storage, PostgresStorage)
    with storage.connect() as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (int(WriteLock.READINGS),))
        with pytest.raises(psycopg.OperationalError) as caught:
            storage.insert_readings([reading(1)])
        assert storage.is_outage(caught.value)
        storage.record_heartbeat(heartbeat())  # other writes do not wait for it
        assert storage.prune_readings(NOW_MS, 10) == 0  # nor does retention
    assert storage.insert_readings([reading(1)]).accepted == 1


@pytest.mark.parametrize("backend", ["postgres"])
def test_the_per_request_lookups_use_indexes(storage: Storage) -> None:
    assert isinstance(storage, PostgresStorage)
    storage.insert_readings(
        [reading(seq, device=f"d{seq % 50}", sensor=f"s{seq % 7}") for seq in range(1, 5001)]
    )
    with storage.connect() as connection:
        connection.execute("ANALYZE readings")
        for sql, params in (
            (LOWEST_SEQ, ("d1",)),
            (ALREADY_STORED, ("d1", "s1", NOW_MS, "virtual", "{}")),
        ):
            plan = connection.execute("EXPLAIN " + sql.replace("?", "%s"), params).fetchall()
            text = " ".join(str(row[0]) for row in plan)
            assert "Index" in text and "Seq Scan" not in text, text


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_database_that_is_gone_is_503_without_internals(
    make_receiver: Callable[..., Receiver], postgres_server: PostgresServer
) -> None:
    receiver = make_receiver(busy_timeout_ms=300)
    assert receiver.post_readings({"readings": []}).status_code == 400
    storage = receiver.state.database
    assert isinstance(storage, PostgresStorage)
    storage.close()
    postgres_server.drop_database(storage.url.rsplit("/", 1)[1])
    for response in (receiver.client.get("/healthz"), receiver.get("/api/readings")):
        body = assert_error(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert "does not exist" not in json.dumps(body)


def test_a_silent_database_peer_is_noticed_in_seconds_unless_the_url_says_otherwise() -> None:
    """A network cut must fail a pooled connection in seconds (503, agents retry), not hang."""
    from beam_receiver.storage.postgres import DEAD_PEER_SETTINGS, PostgresStorage

    storage = PostgresStorage("postgresql://beam@db.example:5432/beam")
    assert {key: storage._connect_kwargs[key] for key in DEAD_PEER_SETTINGS} == DEAD_PEER_SETTINGS
    assert DEAD_PEER_SETTINGS["tcp_user_timeout"] <= 30000
    tuned = PostgresStorage("postgresql://beam@db.example:5432/beam?keepalives_idle=60")
    assert "keepalives_idle" not in tuned._connect_kwargs  # the URL's own value is kept
    assert tuned._connect_kwargs["tcp_user_timeout"] == DEAD_PEER_SETTINGS["tcp_user_timeout"]


def test_pooled_connections_the_server_closed_are_replaced_not_answered_503(
    postgres_server: Any,
) -> None:
    """After a server restart or a network cut, the pool's idle connections are dead: the
    first requests must get fresh ones, not errors (the fleet scenario's partition found it)."""
    import time

    from beam_receiver.storage.postgres import IDLE_CHECK_S, PostgresStorage

    name = postgres_server.create_database()
    storage = PostgresStorage(postgres_server.url(name), PASSWORD, max_connections=3)
    try:
        storage.migrate()
        assert storage.count_readings() == 0  # the pool holds a connection now
        with postgres_server.connect() as admin:
            admin.autocommit = True
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'beam-receiver'",
                (name,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        time.sleep(IDLE_CHECK_S + 0.5)
        for _ in range(3):
            assert storage.count_readings() == 0
    finally:
        storage.close()
        postgres_server.drop_database(name)

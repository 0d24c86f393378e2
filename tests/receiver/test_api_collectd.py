"""POST /api/collectd with bodies that collectd 5.12 (Debian's collectd-core) really sent.

The files in collectd_samples/ are write_http `Format "JSON"` bodies exactly as captured from
`collectd -f` (cpu, memory, load, df, disk, interface and swap plugins, Hostname set to the
test device): two with `StoreRates false` (counters as sent) and one with `StoreRates true`
(rates, and null where collectd had no rate yet).
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from werkzeug.test import TestResponse

from beam_receiver.storage import ALREADY_STORED, LOWEST_SEQ
from beam_receiver.timestamps import format_ms

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE
from tests.support.responses import assert_error, sample

SAMPLES = Path(__file__).parent / "collectd_samples"
RAW_1 = SAMPLES / "write_http_raw_1.json"
RAW_2 = SAMPLES / "write_http_raw_2.json"
RATES = SAMPLES / "write_http_storerates.json"
TEN_YEARS_S = 10 * 365 * 86400


def post(receiver: Receiver, body: Any, name: str = DEVICE) -> TestResponse:
    """As write_http posts: the JSON text, Content-Type application/json, a bearer token."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return receiver.client.post(
        "/api/collectd",
        data=data,
        headers=receiver.headers(name, **{"Content-Type": "application/json"}),
    )


def value_lists(path: Path) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = json.loads(path.read_text())
    return body


def single() -> dict[str, Any]:
    """A real value list with one data source (a memory gauge)."""
    return next(v for v in value_lists(RAW_1) if len(v["values"]) == 1)


def collectd_readings(receiver: Receiver, **params: Any) -> list[dict[str, Any]]:
    page = receiver.get("/api/readings", sensor_type="collectd", limit=1000, **params)
    assert page.status_code == 200, page.get_data(as_text=True)
    readings: list[dict[str, Any]] = page.get_json()["readings"]
    return readings


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    """The samples carry the capture's clock: accept them whatever this machine's clock says."""
    return make_receiver(max_future_s=TEN_YEARS_S)


# -- stored --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [RAW_1, RAW_2, RATES], ids=lambda path: path.stem)
def test_a_real_body_is_stored_one_reading_per_value_list(receiver: Receiver, path: Path) -> None:
    sent = value_lists(path)
    response = post(receiver, path.read_bytes())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"accepted": len(sent), "duplicates": 0}
    stored = collectd_readings(receiver)
    assert len(stored) == len(sent)
    for item, reading in zip(sent, stored):
        sensor = item["plugin"] + (f"-{item['plugin_instance']}" if item["plugin_instance"] else "")
        key = item["type"] + (f"-{item['type_instance']}" if item["type_instance"] else "")
        assert reading["device_id"] == DEVICE
        assert reading["sensor"] == sensor
        assert reading["sensor_type"] == "collectd"
        assert reading["payload"] == {key: dict(zip(item["dsnames"], item["values"]))}
        assert reading["timestamp"].endswith("Z")


def test_the_mapping_of_one_value_list(receiver: Receiver) -> None:
    """interface-lo if_octets from the StoreRates body: two data sources, rates as floats."""
    item = next(
        v
        for v in value_lists(RATES)
        if v["plugin"] == "interface" and v["type"] == "if_octets" and None not in v["values"]
    )
    assert post(receiver, [item]).get_json() == {"accepted": 1, "duplicates": 0}
    (reading,) = collectd_readings(receiver)
    assert reading["sensor"] == f"interface-{item['plugin_instance']}"
    assert reading["payload"] == {"if_octets": {"rx": item["values"][0], "tx": item["values"][1]}}
    moment = datetime.fromtimestamp(item["time"], timezone.utc)
    assert (
        reading["timestamp"]
        == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{item['time']:.3f}"[-3:] + "Z"
    )
    assert reading["seq"] == -1


def test_null_values_are_stored_as_null(receiver: Receiver) -> None:
    nulls = [v for v in value_lists(RATES) if None in v["values"]]
    assert nulls, "the StoreRates sample holds value lists collectd had no rate for yet"
    assert post(receiver, nulls).get_json() == {"accepted": len(nulls), "duplicates": 0}
    for item, reading in zip(nulls, collectd_readings(receiver)):
        (fields,) = reading["payload"].values()
        assert list(fields.values()) == item["values"]


def test_seqs_count_down_from_minus_one_across_requests(receiver: Receiver) -> None:
    first, second = value_lists(RAW_1), value_lists(RAW_2)
    post(receiver, first)
    post(receiver, second)
    seqs = [reading["seq"] for reading in collectd_readings(receiver)]
    assert seqs == list(range(-1, -len(first) - len(second) - 1, -1))


def test_agent_readings_and_collectd_values_of_one_device_never_collide(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    """The agent's seqs 1, 2, 3 ... and the receiver's -1, -2 ... for the same device."""
    agent_batch = {"readings": [make_reading(seq) for seq in range(1, 6)]}
    assert receiver.post_readings(agent_batch).get_json() == {"accepted": 5, "duplicates": 0}
    sent = value_lists(RAW_1)
    assert post(receiver, sent).get_json() == {"accepted": len(sent), "duplicates": 0}
    # The agent re-sends (its ack was lost) and goes on: still exactly-once.
    again = {"readings": [make_reading(seq) for seq in range(4, 9)]}
    assert receiver.post_readings(again).get_json() == {"accepted": 3, "duplicates": 2}
    agent = receiver.get("/api/readings", sensor="geiger", limit=1000).get_json()["readings"]
    assert [r["seq"] for r in agent] == list(range(1, 9))
    assert receiver.stored() == 8 + len(sent)


def test_a_body_sent_twice_is_stored_once(receiver: Receiver) -> None:
    body = RAW_2.read_bytes()
    count = len(value_lists(RAW_2))
    assert post(receiver, body).get_json() == {"accepted": count, "duplicates": 0}
    assert post(receiver, body).get_json() == {"accepted": 0, "duplicates": count}
    assert receiver.stored() == count


def test_a_value_list_twice_in_one_body_is_stored_once(receiver: Receiver) -> None:
    item = value_lists(RAW_1)[0]
    assert post(receiver, [item, copy.deepcopy(item)]).get_json() == {
        "accepted": 1,
        "duplicates": 1,
    }


def test_a_new_value_at_the_same_time_is_a_new_reading(receiver: Receiver) -> None:
    item = single()
    changed = {**item, "values": [item["values"][0] + 1]}
    assert post(receiver, [item]).get_json() == {"accepted": 1, "duplicates": 0}
    assert post(receiver, [changed]).get_json() == {"accepted": 1, "duplicates": 0}


def test_two_devices_number_their_values_separately(receiver: Receiver) -> None:
    item = value_lists(RAW_1)[0]
    post(receiver, [item])
    assert post(receiver, [{**item, "host": OTHER_DEVICE}], name=OTHER_DEVICE).get_json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert [r["seq"] for r in collectd_readings(receiver)] == [-1, -1]


def test_concurrent_posts_never_share_a_seq(receiver: Receiver) -> None:
    """Seqs are taken inside the write transaction, so racing requests cannot reuse one."""
    items = value_lists(RAW_1) + value_lists(RAW_2)
    bodies = [[item] for item in items]
    failures: list[str] = []

    def send(part: list[list[dict[str, Any]]]) -> None:
        client = receiver.app.test_client()
        for body in part:
            response = client.post(
                "/api/collectd",
                data=json.dumps(body),
                headers=receiver.headers(**{"Content-Type": "application/json"}),
            )
            if response.status_code != 200:
                failures.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=send, args=(bodies[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    seqs = sorted(reading["seq"] for reading in collectd_readings(receiver))
    assert seqs == list(range(-len(items), 0))


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        (LOWEST_SEQ, (DEVICE,)),
        (ALREADY_STORED, (DEVICE, "cpu-0", 1, "collectd", "{}")),
    ],
    ids=["lowest seq", "already stored"],
)
@pytest.mark.sqlite_only  # SQLite's query planner; PostgreSQL's plans: test_backends.py
def test_the_per_request_lookups_are_index_searches(
    receiver: Receiver, sql: str, params: tuple[Any, ...]
) -> None:
    """Probes of the (device_id, seq) and (device_id, sensor, ts_ms) indexes, not scans."""
    connection = receiver.state.database.connection()
    plan = " ".join(str(row[-1]) for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "SEARCH" in plan and "INDEX" in plan and "SCAN" not in plan, plan


def test_analytics_reads_collectd_fields(receiver: Receiver) -> None:
    """A collectd field is reached as type[-type_instance].dsname, e.g. load.shortterm."""
    items = [v for v in value_lists(RAW_1) if v["plugin"] == "load"]
    assert items, "the sample holds the load plugin's value list"
    post(receiver, items)
    start_s = int(items[0]["time"]) // 3600 * 3600
    response = receiver.get(
        "/api/analytics/series",
        device_id=DEVICE,
        sensor="load",
        field="load.shortterm",
        bucket="1h",
        start=format_ms(start_s * 1000),
        end=format_ms((start_s + 3600) * 1000),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    buckets = response.get_json()["buckets"]
    assert [bucket["count"] for bucket in buckets] == [len(items)]
    assert buckets[0]["max"] == max(item["values"][0] for item in items)


def test_metrics_count_collectd_values(receiver: Receiver) -> None:
    sent = value_lists(RAW_1)
    post(receiver, sent)
    post(receiver, sent)
    text = receiver.client.get("/metrics", headers=receiver.operator()).get_data(as_text=True)
    assert sample(text, "beam_receiver_readings_accepted_total", device_id=DEVICE) == len(sent)
    assert sample(text, "beam_receiver_readings_duplicates_total", device_id=DEVICE) == len(sent)


# -- 400: nothing stored -------------------------------------------------------------------


def test_one_bad_value_list_rejects_the_whole_body(receiver: Receiver) -> None:
    sent = value_lists(RAW_1)
    sent[3]["values"] = ["12"]
    body = assert_error(post(receiver, sent), 400, "invalid_body")
    assert body["details"] == [
        {"index": 3, "field": "values[0]", "message": "must be a number or null, not a string"}
    ]
    assert receiver.stored() == 0


def change(item: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = {**item, **fields}
    return {key: value for key, value in changed.items() if value is not DROP}


DROP = object()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"values": 5}, "values", "array"),
        ({"values": []}, "values", "at least one"),
        ({"values": [True]}, "values[0]", "number or null"),
        ({"values": [2**64 - 1]}, "values[0]", "64-bit"),
        ({"values": [1, 2]}, "values", "as long as each other"),
        ({"time": -1}, "time", ">= 0"),
        ({"time": 10**400}, "time", "epoch seconds"),
        ({"dstypes": ["GAUGE"]}, "dstypes[0]", "not one of"),
        ({"dsnames": [""]}, "dsnames[0]", "empty"),
        ({"time": "1795457343.453"}, "time", "epoch seconds"),
        ({"time": 4e10}, "time", "ahead of the receiver's clock"),
        ({"interval": 0}, "interval", "> 0"),
        ({"plugin": ""}, "plugin", "empty"),
        ({"plugin_instance": None}, "plugin_instance", "string"),
        ({"plugin_instance": "x" * 128}, "plugin_instance", "at most 128"),
        ({"type": "tab\there"}, "type", "control"),
        ({"type_instance": 3}, "type_instance", "string"),
        ({"meta": "x"}, "meta", "object"),
        ({"severity": "OKAY"}, "'severity'", "unknown field"),
        ({"time": DROP}, "time", "is required"),
    ],
)
def test_a_bad_field_is_named(
    receiver: Receiver, fields: dict[str, Any], field: str, words: str
) -> None:
    body = assert_error(post(receiver, [change(single(), **fields)]), 400, "invalid_body")
    assert body["message"] == "The value list is invalid; nothing was stored."
    assert [(d["index"], d["field"]) for d in body["details"]] == [(0, field)], body
    assert words in body["details"][0]["message"]
    assert receiver.stored() == 0


def test_two_data_sources_with_one_name_are_refused(receiver: Receiver) -> None:
    item = change(single(), values=[1, 2], dstypes=["gauge"] * 2, dsnames=["v", "v"])
    body = assert_error(post(receiver, [item]), 400, "invalid_body")
    assert body["details"][0]["field"] == "dsnames[1]"


def test_meta_is_accepted_and_not_stored(receiver: Receiver) -> None:
    item = change(value_lists(RAW_1)[0], meta={"network:received": True})
    assert post(receiver, [item]).status_code == 200
    assert "meta" not in json.dumps(collectd_readings(receiver)[0]["payload"])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"values": [1]}, "not an array"),
        ([], "empty"),
        ("null", "not an array"),
    ],
)
def test_a_body_that_is_not_value_lists_is_refused(
    receiver: Receiver, body: Any, words: str
) -> None:
    response = post(receiver, body if isinstance(body, str) else json.dumps(body))
    assert words in assert_error(response, 400, "invalid_body")["details"][0]["message"]


def test_broken_json_is_invalid_json(receiver: Receiver) -> None:
    truncated = RAW_1.read_bytes()[:-20]
    assert_error(post(receiver, truncated), 400, "invalid_json")
    assert receiver.stored() == 0


def test_problems_are_listed_for_every_value_list(receiver: Receiver) -> None:
    sent = value_lists(RAW_1)
    first, second = [i for i, v in enumerate(sent) if len(v["values"]) == 1][:2]
    sent[first]["dstypes"] = ["bogus"]
    sent[second]["plugin"] = ""
    body = assert_error(post(receiver, sent), 400, "invalid_body")
    assert body["message"] == "2 problem(s) in the value lists; nothing was stored."
    assert [(d["index"], d["field"]) for d in body["details"]] == [
        (first, "dstypes[0]"),
        (second, "plugin"),
    ]


# -- 401, 403, 415 -------------------------------------------------------------------------


def test_another_host_is_forbidden(receiver: Receiver) -> None:
    sent = value_lists(RAW_1)
    sent[2]["host"] = "somewhere-else"
    body = assert_error(post(receiver, sent), 403, "forbidden")
    assert body["details"][0]["index"] == 2
    assert body["details"][0]["field"] == "host"
    assert 'Hostname "beamrider-0001"' in body["details"][0]["message"]
    assert receiver.stored() == 0


def test_no_token_is_unauthorized(receiver: Receiver) -> None:
    response = receiver.client.post(
        "/api/collectd", data=RAW_1.read_bytes(), content_type="application/json"
    )
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_operator_may_not_write(receiver: Receiver) -> None:
    assert_error(post(receiver, RAW_1.read_bytes(), name="ops"), 403, "forbidden")


def test_a_body_that_is_not_json_is_unsupported(receiver: Receiver) -> None:
    response = receiver.client.post(
        "/api/collectd",
        data="PUTVAL beamrider-0001/load/load interval=10 N:0.1:0.2:0.3\n",
        headers=receiver.headers(**{"Content-Type": "text/plain"}),
    )
    assert_error(response, 415, "unsupported_media_type")


def test_latest_holds_every_value_list_of_a_plugin_instance(receiver: Receiver) -> None:
    """cpu-0's value lists share sensor and time: latest answers all of them, not one."""
    assert post(receiver, value_lists(RAW_2)).status_code == 200
    answer = receiver.get("/api/readings/latest", device_id=DEVICE).get_json()
    rows = answer["readings"] if isinstance(answer, dict) else answer
    cpu0 = [key for row in rows if row["sensor"] == "cpu-0" for key in row["payload"]]
    states = ("user", "system", "wait", "nice", "interrupt", "softirq", "steal", "idle")
    assert sorted(cpu0) == sorted(f"percent-{state}" for state in states)


def test_latest_holds_the_newest_of_each_value_list_of_one_read(receiver: Receiver) -> None:
    """collectd stamps each value list as it reads it: one read of df-root is a few ms
    apart. latest answers the newest of each value list of that read, not only those that
    share the newest millisecond, and never an older read's."""
    base = single()

    def value_list(type_instance: str, time_s: float, value: float) -> dict[str, Any]:
        return change(
            base,
            plugin="df",
            plugin_instance="root",
            type="df_complex",
            type_instance=type_instance,
            time=time_s,
            values=[value],
        )

    older = [value_list(name, 1_770_000_000.0, 1.0) for name in ("free", "used", "reserved")]
    read = [
        value_list("free", 1_770_000_010.001, 2.0),
        value_list("used", 1_770_000_010.002, 3.0),
        value_list("reserved", 1_770_000_010.003, 4.0),
    ]
    again = [value_list("reserved", 1_770_000_010.5, 5.0)]  # within the read's spread: newest wins
    assert post(receiver, older + read + again).status_code == 200
    answer = receiver.get("/api/readings/latest", device_id=DEVICE).get_json()
    df = {
        key: row["payload"][key]["value"]
        for row in answer["readings"]
        if row["sensor"] == "df-root"
        for key in row["payload"]
    }
    assert df == {"df_complex-free": 2.0, "df_complex-used": 3.0, "df_complex-reserved": 5.0}


def test_a_node_that_sends_only_collectd_is_seen_in_the_fleet(receiver: Receiver) -> None:
    before = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert before["last_seen"] is None and before["status"] == "offline"
    assert post(receiver, value_lists(RAW_1)).status_code == 200
    after = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert after["status"] == "online", after
    assert after["last_seen"] is not None


def test_collectd_does_not_speak_for_a_node_that_sends_heartbeats(receiver: Receiver) -> None:
    """An agent's silence must show even while collectd on the same node still sends."""
    heartbeat = {"node_id": DEVICE, "timestamp": "2026-02-15T19:06:00Z"}
    assert receiver.client.post(
        "/api/telemetry", json=heartbeat, headers=receiver.headers()
    ).status_code in (200, 202)
    seen = receiver.get(f"/api/nodes/{DEVICE}").get_json()["last_seen"]
    receiver.state.database.insert_readings([], 4_000_000_000_000, seen_collectd_node=DEVICE)
    assert receiver.get(f"/api/nodes/{DEVICE}").get_json()["last_seen"] == seen

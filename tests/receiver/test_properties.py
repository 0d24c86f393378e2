"""Property: whatever body reaches POST /api/readings, the answer is never a 5xx, and the
number of stored readings changes by exactly what a 200 reported as accepted."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
clean_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


any_time = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
).map(rfc3339)
past_time = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(timezone.utc)
).map(rfc3339)
valid_readings = st.fixed_dictionaries(
    {
        "device_id": st.just(DEVICE),
        "sensor": st.sampled_from(["geiger", "bme280", "wave"]),
        "sensor_type": st.sampled_from(["mightyohm", "bme280", "virtual"]),
        "payload": st.dictionaries(st.text(max_size=8), clean_values, max_size=5),
        "timestamp": past_time,
        "seq": st.integers(min_value=1, max_value=60),  # small: resends happen often
    }
)


@st.composite
def damaged_readings(draw: st.DrawFn) -> Any:
    """A valid reading with one field removed, replaced by junk, or one field added."""
    reading = dict(draw(valid_readings))
    key = draw(st.sampled_from(sorted(reading)))
    action = draw(st.sampled_from(["drop", "replace", "add", "time", "payload"]))
    if action == "time":
        reading["timestamp"] = draw(any_time)
    elif action == "payload":
        reading["payload"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
    elif action == "drop":
        del reading[key]
    elif action == "replace":
        reading[key] = draw(json_values)
    else:
        reading[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    if draw(st.booleans()):
        reading["device_id"] = draw(st.sampled_from([DEVICE, OTHER_DEVICE]))
    return reading


readings = valid_readings | damaged_readings()
valid_batches = st.fixed_dictionaries(
    {"readings": st.lists(valid_readings, min_size=1, max_size=6)}
)
# Weighted towards well-formed bodies so that acceptance and dedupe are exercised too.
documents = st.one_of(
    valid_readings,
    valid_batches,
    valid_batches,
    valid_batches,
    damaged_readings(),
    st.fixed_dictionaries({"readings": st.lists(readings, max_size=6)}),
    json_values,
)


# Hypothesis leans towards the first choice and small integers: list the usual case first.
rarely = st.sampled_from([False] * 9 + [True])
sometimes = st.sampled_from([False] * 3 + [True])


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers: mostly JSON documents, sometimes raw bytes or other types."""
    if draw(rarely):
        body = draw(st.binary(max_size=200))
    else:
        document = draw(documents)
        body = json.dumps(document, allow_nan=True).encode()
        if draw(rarely):  # cut short: not JSON any more
            body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    headers = {"Content-Type": draw(st.sampled_from(["application/json"] * 9 + ["text/plain"]))}
    if draw(sometimes):
        headers["Content-Encoding"] = "gzip"
        if not draw(rarely):
            body = gzip.compress(body)
    return body, headers


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_never_5xx_and_stored_count_matches_the_answer(
    receiver: Receiver, request: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = request
    before = receiver.stored()
    response = receiver.client.post("/api/readings", data=body, headers=receiver.headers(**headers))
    after = receiver.stored()
    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500, response.get_data(as_text=True)
    answer = response.get_json()
    if response.status_code == 200:
        assert after - before == answer["accepted"]
        document = json.loads(gzip.decompress(body) if "Content-Encoding" in headers else body)
        sent = len(document["readings"]) if "readings" in document else 1
        assert answer["accepted"] + answer["duplicates"] == sent
    else:
        assert after == before
        assert set(answer) == {"error", "message", "details"}
        assert response.status_code in (400, 403, 413, 415)


# Per parameter, values that are usually right, so the SQL runs; plus anything at all.
plausible = {
    "device_id": st.sampled_from([DEVICE, OTHER_DEVICE, "nobody"]),
    "sensor": st.sampled_from(["geiger", "bme280", "wave"]),
    "sensor_type": st.sampled_from(["mightyohm", "virtual"]),
    "start": past_time,
    "end": past_time | st.just("2026-11-01T00:00:00Z"),
    "limit": st.integers(1, 1000).map(str),
    "after": st.integers(0, 2**63 - 1).map(str),
    "field": st.sampled_from(["cpm", "usv_per_hr", "env.t", "mode", "a b", "x[0]", "$"]),
    "bucket": st.sampled_from(["1s", "60s", "5m", "1h", "1d", "3600"]),
}
query_values = (
    st.text(max_size=30)
    | st.from_regex(r"[0-9]{1,22}", fullmatch=True)
    | st.from_regex(r"-?[0-9]{1,4}[smhd]?", fullmatch=True)
    | any_time
)


PARAMETERS = {
    "/api/readings": ["device_id", "sensor", "sensor_type", "start", "end", "limit", "after"],
    "/api/readings/latest": ["device_id"],
    "/api/analytics/series": ["device_id", "sensor", "field", "bucket", "start", "end"],
    "/api/nodes": [],
}


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A path and a query string: mostly its own parameters, mostly plausible values."""
    path = draw(st.sampled_from(sorted(PARAMETERS)))
    names = draw(st.sets(st.sampled_from(PARAMETERS[path] or ["device_id"]), max_size=6))
    if path == "/api/analytics/series" and not draw(rarely):
        names |= {"device_id", "sensor", "field"}  # the required ones, most of the time
    if not PARAMETERS[path] and not draw(rarely):
        names = set()
    query = [
        (name, draw(plausible[name] if draw(sometimes_not) else query_values)) for name in names
    ]
    if draw(rarely):
        query.append((draw(st.text(min_size=1, max_size=6)), draw(query_values)))
    return path, query


sometimes_not = st.sampled_from([True] * 3 + [False])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=queries())
def test_queries_never_5xx(receiver: Receiver, request: tuple[str, list[tuple[str, str]]]) -> None:
    """Any query string gets 200 or a 400 naming the problem; only data reaches the SQL."""
    seed = [
        {
            "device_id": DEVICE,
            "sensor": "geiger",
            "sensor_type": "mightyohm",
            "payload": {"cpm": seq, "env": {"t": seq / 2}, "a b": 1, "x[0]": 2, "$": 3},
            "timestamp": f"2025-06-01T12:{seq:02d}:00Z",
            "seq": seq,
        }
        for seq in range(1, 31)
    ]
    assert receiver.post_readings({"readings": seed}).status_code == 200  # resent: duplicates
    path, query = request
    response = receiver.client.get(path, query_string=query, headers=receiver.operator())
    event(f"{path} {response.status_code}")
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    body = response.get_json()
    if response.status_code == 400:
        assert body["error"] == "invalid_query" and body["details"]

"""collectd's write_http `Format "JSON"` body as readings.

collectd posts a JSON array of value lists:

    [{"values": [1.5, 2], "dstypes": ["gauge", "derive"], "dsnames": ["rx", "tx"],
      "time": 1795457343.453, "interval": 10.000, "host": "beamrider-0001",
      "plugin": "interface", "plugin_instance": "eth0", "type": "if_octets",
      "type_instance": ""}, ...]

Each value list becomes one reading of the token's device: sensor = plugin[-plugin_instance],
sensor_type = "collectd", payload = {type[-type_instance]: {dsname: value, ...}}, timestamp =
time (collectd sends milliseconds). A value is a number, or null where collectd had NaN.

Identity. Readings are keyed by (device_id, seq) and the agent's seqs are 1, 2, 3 ...;
collectd has no seq and never retries. So its readings leave here with seq None, and
storage.Database.insert_readings numbers them downwards from -1 per device in the
transaction that stores them; a value list that is already stored (same device, sensor,
time and payload) counts as a duplicate, so a re-sent body is harmless too.

No Flask and no SQL here: the blueprint is api/collectd.py, the ingest path api/ingest.py.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from beam_receiver.storage import INT64_MAX, INT64_MIN, NewReading
from beam_receiver.timestamps import format_ms
from beam_receiver.validation import (
    ENCODER,
    MAX_DETAILS,
    MAX_NAME_LENGTH,
    Problems,
    ValidationError,
    json_type,
    name_problem,
)

SENSOR_TYPE = "collectd"
REQUIRED_FIELDS = (
    "values",
    "dstypes",
    "dsnames",
    "time",
    "interval",
    "host",
    "plugin",
    "plugin_instance",
    "type",
    "type_instance",
)
OPTIONAL_FIELDS = ("meta",)  # written by collectd when a value list carries metadata; ignored
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
DS_TYPES = ("gauge", "derive", "counter", "absolute")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> Optional[float]:
    """The value as a float if it is a finite JSON number, else None."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _instance_name(
    item: dict[str, Any], base: str, instance: str, problems: Problems, index: int
) -> Optional[str]:
    """plugin[-plugin_instance] or type[-type_instance], each part checked."""
    name = item.get(base)
    suffix = item.get(instance)
    before = problems.count
    message = name_problem(name)
    if message:
        problems.add(base, message, index)
    if not isinstance(suffix, str):
        problems.add(instance, f"must be a string (may be empty), not {json_type(suffix)}", index)
    elif suffix:
        message = name_problem(suffix)
        if message:
            problems.add(instance, message, index)
    if problems.count > before:
        return None
    assert isinstance(name, str) and isinstance(suffix, str)
    joined = f"{name}-{suffix}" if suffix else name
    if len(joined) > MAX_NAME_LENGTH:
        problems.add(
            instance, f"{base}-{instance} must be at most {MAX_NAME_LENGTH} characters", index
        )
        return None
    return joined


def _data_sources(
    item: dict[str, Any], problems: Problems, index: int
) -> Optional[dict[str, Optional[float]]]:
    """dsname -> value; values, dstypes and dsnames must line up one to one."""
    values, dstypes, dsnames = item.get("values"), item.get("dstypes"), item.get("dsnames")
    before = problems.count
    for name, array in (("values", values), ("dstypes", dstypes), ("dsnames", dsnames)):
        if not isinstance(array, list):
            problems.add(name, f"must be an array, not {json_type(array)}", index)
        elif not array:
            problems.add(name, "must hold at least one element", index)
    if problems.count > before:
        return None
    assert isinstance(values, list) and isinstance(dstypes, list) and isinstance(dsnames, list)
    if not len(values) == len(dstypes) == len(dsnames):
        problems.add(
            "values",
            f"values, dstypes and dsnames must be as long as each other"
            f" ({len(values)}, {len(dstypes)}, {len(dsnames)})",
            index,
        )
        return None
    for position, dstype in enumerate(dstypes):
        if dstype not in DS_TYPES:
            shown = repr(dstype)[:40]
            problems.add(
                f"dstypes[{position}]", f"{shown} is not one of {', '.join(DS_TYPES)}", index
            )
    sources: dict[str, Optional[float]] = {}
    for position, (dsname, value) in enumerate(zip(dsnames, values)):
        message = name_problem(dsname)
        if message:
            problems.add(f"dsnames[{position}]", message, index)
        elif dsname in sources:
            problems.add(f"dsnames[{position}]", f"{dsname!r} appears twice", index)
        if value is None:  # collectd writes null for NaN (a gauge it could not read, a rate)
            pass
        elif not _is_number(value):
            problems.add(
                f"values[{position}]", f"must be a number or null, not {json_type(value)}", index
            )
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            problems.add(
                f"values[{position}]",
                "is an integer outside the 64-bit range (a counter past 2^63-1;"
                " StoreRates true sends rates instead)",
                index,
            )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.add(f"values[{position}]", "must be a finite number", index)
        if isinstance(dsname, str):
            sources[dsname] = value
    return None if problems.count > before else sources


# 9999-12-31T23:59:59Z: the last second an RFC 3339 timestamp (four-digit year) can name.
LATEST_TIME_S = 253_402_300_799


def _time(
    item: dict[str, Any], problems: Problems, index: int, now: int, max_future_ms: int
) -> Optional[int]:
    """collectd's time (epoch seconds, three decimals) as epoch milliseconds."""
    value = item.get("time")
    seconds = _finite(value)
    if seconds is None or seconds < 0:
        problems.add("time", f"must be epoch seconds (a number >= 0), not {value!r:.40}", index)
        return None
    # Beyond what a timestamp can say (format_ms would raise), or where * 1000 is infinite.
    if seconds >= LATEST_TIME_S + 1 or round(seconds * 1000) > LATEST_TIME_S * 1000 + 999:
        problems.add("time", f"{value!r:.40} is after 9999-12-31T23:59:59.999Z", index)
        return None
    epoch_ms = round(seconds * 1000)
    if epoch_ms > now + max_future_ms:
        problems.add(
            "time",
            f"{format_ms(epoch_ms)} is more than {max_future_ms // 1000} s ahead of the"
            f" receiver's clock ({format_ms(now)}); is the node's clock wrong?",
            index,
        )
        return None
    return epoch_ms


def _check_interval(item: dict[str, Any], problems: Problems, index: int) -> None:
    """Not stored, but a value list without a sane interval is not collectd's."""
    interval = item.get("interval")
    seconds = _finite(interval)
    if seconds is None or seconds <= 0:
        problems.add("interval", f"must be a number of seconds > 0, not {interval!r:.40}", index)


def _value_list(
    item: Any, index: int, device_id: str, problems: Problems, now: int, max_future_ms: int
) -> Optional[NewReading]:
    """The reading a value list becomes, without a seq: storage numbers it."""
    if not isinstance(item, dict):
        problems.add(None, f"a value list must be a JSON object, not {json_type(item)}", index)
        return None
    before = problems.count
    for name in item:
        if name not in KNOWN_FIELDS:
            shown = repr(name)[:60]
            problems.add(shown, f"unknown field (known: {', '.join(KNOWN_FIELDS)})", index)
    missing = [name for name in REQUIRED_FIELDS if name not in item]
    for name in missing:
        problems.add(name, "is required", index)
    if missing:
        return None
    message = name_problem(item["host"])
    if message:
        problems.add("host", message, index)
    if "meta" in item and not isinstance(item["meta"], dict):
        problems.add("meta", f"must be an object, not {json_type(item['meta'])}", index)
    sensor = _instance_name(item, "plugin", "plugin_instance", problems, index)
    key = _instance_name(item, "type", "type_instance", problems, index)
    sources = _data_sources(item, problems, index)
    epoch_ms = _time(item, problems, index, now, max_future_ms)
    _check_interval(item, problems, index)
    if problems.count > before or sensor is None or key is None or sources is None:
        return None
    assert epoch_ms is not None
    return NewReading(
        device_id=device_id,
        seq=None,
        sensor=sensor,
        sensor_type=SENSOR_TYPE,
        timestamp=format_ms(epoch_ms),
        ts_ms=epoch_ms,
        payload=ENCODER.encode({key: sources}),  # {type[-type_instance]: {dsname: value}}
    )


def value_list_items(body: Any) -> list[Any]:
    """The value lists of a body: collectd always sends a non-empty JSON array."""
    if not isinstance(body, list):
        raise ValidationError(
            "The body must be collectd's JSON array of value lists; nothing was stored.",
            [{"field": None, "message": f"the body is {json_type(body)}, not an array"}],
        )
    if not body:
        raise ValidationError(
            "The body holds no value lists; nothing was stored.",
            [{"field": None, "message": "the array is empty"}],
        )
    return body


def foreign_hosts(items: list[Any], device_id: str) -> list[dict[str, Any]]:
    """Details for every value list whose host is not the token's device."""
    details = []
    for index, item in enumerate(items):
        host = item.get("host") if isinstance(item, dict) else None
        if isinstance(host, str) and host != device_id:
            details.append(
                {
                    "index": index,
                    "field": "host",
                    "message": f"this token belongs to {device_id!r}, not {host[:128]!r}"
                    f' (set Hostname "{device_id}" in collectd.conf)',
                }
            )
            if len(details) >= MAX_DETAILS:
                break
    return details


def parse_value_lists(
    items: list[Any], device_id: str, now: int, max_future_ms: int
) -> list[NewReading]:
    """Every value list checked; any problem anywhere rejects the whole body."""
    problems = Problems()
    parsed = []
    for index, item in enumerate(items):
        value_list = _value_list(item, index, device_id, problems, now, max_future_ms)
        if value_list is not None:
            parsed.append(value_list)
    problems.raise_if_any(
        f"{problems.count} problem(s) in the value lists; nothing was stored."
        if len(items) > 1
        else "The value list is invalid; nothing was stored."
    )
    return parsed

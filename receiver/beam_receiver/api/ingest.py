"""The one ingest path of every endpoint that writes readings (/api/readings, /api/collectd).

The endpoints differ only in their wire format: how a body holds its items, which field of
an item names its device, and how the items become readings. Everything else is here once,
so the endpoints cannot drift apart: the body's limits, the 403 for another device's items,
the rejection counts, the all-or-nothing store and the accepted / duplicate counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beam_receiver.api.params import invalid
from beam_receiver.api.versions import note_deprecated
from beam_receiver.body import read_json_body
from beam_receiver.errors import ApiError
from beam_receiver.state import get_state
from beam_receiver.storage import NewReading
from beam_receiver.timestamps import now_ms
from beam_receiver.validation import ValidationError


@dataclass(frozen=True)
class WireFormat:
    """What makes an endpoint's body readings; each step raises ValidationError for a 400."""

    # The body's items, never none: every count below is in items.
    items: Callable[[Any], list[Any]]
    # (items, device_id) -> a detail for every item that names another device.
    foreign: Callable[[list[Any], str], list[dict[str, Any]]]
    # (items, device_id, now_ms, max_future_ms) -> the checked readings, all or none.
    parse: Callable[[list[Any], str, int, int], list[NewReading]]
    # The sender may never send a heartbeat (collectd): a stored body marks it as seen.
    marks_seen: bool = False


def ingest(wire: WireFormat, device_id: str, endpoint: str = "readings") -> dict[str, int]:
    """Store the request body's readings for the token's device, all or nothing.

    The answer's body is {"accepted": new readings, "duplicates": readings already stored}.
    A refused body counts its items in readings_rejected by error code (1 while the items
    are unknown: an unreadable body), so a dashboard sees how many readings were lost.
    """
    state = get_state()
    count = 1
    try:
        body = read_json_body(state.config.max_body_bytes)
        items = wire.items(body)
        count = len(items)
        foreign = wire.foreign(items, device_id)
        if foreign:
            raise ApiError(
                403,
                "forbidden",
                f"A device writes only as itself; this token belongs to {device_id!r}.",
                foreign,
            )
        readings = wire.parse(items, device_id, now_ms(), int(state.config.max_future_s * 1000))
    except ValidationError as exc:
        state.metrics.readings_rejected.labels("invalid_body").inc(count)
        raise invalid(exc, "invalid_body") from exc
    except ApiError as exc:
        state.metrics.readings_rejected.labels(exc.error).inc(count)
        raise
    result = state.database.insert_readings(
        readings, seen_collectd_node=device_id if wire.marks_seen else None
    )
    state.metrics.readings_accepted.labels(device_id).inc(result.accepted)
    state.metrics.readings_duplicate.labels(device_id).inc(result.duplicates)
    note_deprecated(body, endpoint)
    return {"accepted": result.accepted, "duplicates": result.duplicates}

"""Inputs the fuzz campaign (fuzz_campaign.py) found answering 500, each now a clear 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.responses import assert_error

SAMPLE = Path(__file__).parent / "collectd_samples" / "write_http_raw_1.json"


def value_list(**fields: Any) -> dict[str, Any]:
    """A value list collectd really sent, with fields replaced."""
    body = json.loads(SAMPLE.read_text())
    item: dict[str, Any] = next(v for v in body if len(v["values"]) == 1)
    item.update(host=DEVICE, **fields)
    return item


@pytest.mark.parametrize(
    ("time_s", "max_future_s"),
    [
        (1e11, 86400),  # year ~5138: ahead of the clock, and the message formats it
        (1e12, 86400),  # past year 9999: the message could not format it (OverflowError)
        (1e12, 1e12),  # past year 9999 but not "ahead": could not be stored as a timestamp
        (8.8e307, 86400),  # seconds * 1000 overflows to infinity (OverflowError in round)
        (253_402_300_799.9996, 1e12),  # rounds to the first millisecond of year 10000
    ],
)
def test_collectd_time_far_in_the_future_is_a_400_naming_time(
    make_receiver: Callable[..., Receiver], time_s: float, max_future_s: float
) -> None:
    receiver = make_receiver(max_future_s=max_future_s)
    response = receiver.client.post(
        "/api/collectd",
        data=json.dumps([value_list(time=time_s)]),
        headers=receiver.headers(**{"Content-Type": "application/json"}),
    )
    body = assert_error(response, 400, "invalid_body")
    assert [detail["field"] for detail in body["details"]] == ["time"]
    assert receiver.stored() == 0

"""Virtual signals: exactly predictable, which is what labs and end-to-end tests need."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from beam_agent.drivers import resolve_driver
from beam_agent.drivers.base import OptionError
from beam_agent.drivers.virtual import VirtualDriver, sine_value

from tests.support.readings import assert_json_payload


def values(driver: VirtualDriver, reads: int, field: str = "value") -> list[Any]:
    out = []
    for _ in range(reads):
        [sample] = driver.read()
        assert sample.sensor_type == "virtual"
        assert_json_payload(sample.payload)
        out.append(sample.payload[field])
    return out


def test_counter_counts_reads_from_one() -> None:
    driver = VirtualDriver({"signal": "counter", "amplitude": 5.0, "offset": 100.0})
    assert values(driver, 5) == [1, 2, 3, 4, 5]
    assert all(isinstance(v, int) for v in values(driver, 2))


def test_random_walk_is_reproducible_from_its_seed() -> None:
    options = {"signal": "random_walk", "seed": 42, "amplitude": 0.5, "offset": 20.0}
    first = values(VirtualDriver(options), 50)
    again = values(VirtualDriver(options), 50)
    other = values(VirtualDriver({**options, "seed": 43}), 50)
    assert first == again
    assert first != other


def test_random_walk_is_the_documented_sum_of_uniform_steps() -> None:
    rng = random.Random(7)
    expected, level = [], 3.0
    for _ in range(20):
        level += rng.uniform(-2.0, 2.0)
        expected.append(level)
    options = {"signal": "random_walk", "seed": 7, "amplitude": 2.0, "offset": 3.0}
    walk = values(VirtualDriver(options), 20)
    assert walk == expected
    steps = [b - a for a, b in zip([3.0, *walk], walk)]
    assert all(abs(step) <= 2.0 for step in steps)


def test_sine_is_a_function_of_the_sample_timestamp() -> None:
    options = {"signal": "sine", "amplitude": 2.5, "period_s": 0.05, "offset": 10.0}
    driver = VirtualDriver(options)
    for _ in range(20):
        [sample] = driver.read()
        expected = sine_value(sample.timestamp.timestamp(), 2.5, 0.05, 10.0)
        assert sample.payload["value"] == expected
        assert 7.5 <= sample.payload["value"] <= 12.5


def test_sine_value_hits_its_peaks_at_the_quarter_periods() -> None:
    assert sine_value(0.0, 3.0, 8.0, 1.0) == 1.0
    assert sine_value(2.0, 3.0, 8.0, 1.0) == pytest.approx(4.0)
    assert sine_value(6.0, 3.0, 8.0, 1.0) == pytest.approx(-2.0)
    assert sine_value(8.0, 3.0, 8.0, 1.0) == pytest.approx(1.0, abs=1e-12)
    assert math.isfinite(sine_value(1.7e9, 1.0, 60.0, 0.0))


def test_the_value_is_reported_under_the_configured_field() -> None:
    driver = VirtualDriver({"signal": "counter", "field": "cps"})
    [sample] = driver.read()
    assert sample.payload == {"cps": 1}


def test_registered_under_its_type_name_with_documented_options() -> None:
    assert resolve_driver("virtual") is VirtualDriver
    assert VirtualDriver.description
    assert all(option.help for option in VirtualDriver.options)


def test_defaults() -> None:
    assert VirtualDriver.validate_options({}) == {
        "signal": "sine",
        "seed": 0,
        "amplitude": 1.0,
        "period_s": 60.0,
        "offset": 0.0,
        "field": "value",
    }


def test_validated_options_construct_the_driver_as_the_config_loader_does() -> None:
    options = VirtualDriver.validate_options({})
    assert VirtualDriver.validate_options(options) == options  # validating twice changes nothing
    assert VirtualDriver(options).config == options


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"signl": "sine"}, "signl"),
        ({"signal": "square"}, "signal"),
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"amplitude": "big"}, "amplitude"),
        ({"amplitude": -1.0}, "amplitude"),
        ({"period_s": 0}, "period_s"),
        ({"offset": [1]}, "offset"),
        ({"field": ""}, "field"),
        ({"field": 3}, "field"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        VirtualDriver.validate_options(raw)
    assert caught.value.key == key
    with pytest.raises(OptionError):
        VirtualDriver(raw)

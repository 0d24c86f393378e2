"""Power supplies read from a sysfs tree built in tmp_path: the kernel's own file interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beam_agent.drivers import resolve_driver
from beam_agent.drivers.base import DriverError, OptionError
from beam_agent.drivers.power_supply import PowerSupplyDriver

from tests.support.readings import assert_json_payload


def supply(root: Path, name: str, **attributes: Any) -> Path:
    """One /sys/class/power_supply/<name> directory; each value is written as the kernel does."""
    directory = root / name
    directory.mkdir(parents=True)
    for attribute, value in attributes.items():
        (directory / attribute).write_text(f"{value}\n")
    return directory


@pytest.fixture
def laptop(tmp_path: Path) -> Path:
    """A battery without power_now, one with it, a mains adapter: what laptops and UPSes show."""
    root = tmp_path / "power_supply"
    supply(root, "BAT0", type="Battery", status="Discharging", present=1, capacity=87,
           voltage_now=12_345_000, current_now=1_500_000, energy_now=40_000_000,
           energy_full=50_000_000, energy_full_design=57_000_000, temp=251,
           technology="Li-ion")  # fmt: skip
    supply(root, "BAT1", type="Battery", status="Charging", present=1, capacity=42,
           voltage_now=3_700_000, current_now=-500_000, power_now=9_000_000,
           charge_now=2_000_000, charge_full=4_800_000)  # fmt: skip
    supply(root, "AC", type="Mains", online=1)
    return root


def by_supply(driver: PowerSupplyDriver) -> dict[str, dict[str, Any]]:
    samples = driver.read()
    for sample in samples:
        assert sample.sensor_type == "power_supply"
        assert_json_payload(sample.payload)
    return {sample.payload["supply"]: sample.payload for sample in samples}


def test_every_supply_is_one_sample_in_si_units(laptop: Path) -> None:
    payloads = by_supply(PowerSupplyDriver({"root": str(laptop)}))
    assert sorted(payloads) == ["AC", "BAT0", "BAT1"]
    assert payloads["BAT0"] == {
        "supply": "BAT0",
        "type": "Battery",
        "status": "Discharging",
        "online": None,
        "capacity": 87,
        "voltage_v": 12.345,
        "current_a": 1.5,
        "power_w": 18.5175,  # no power_now: V * A
        "energy_now_wh": 40.0,
        "energy_full_wh": 50.0,
        "energy_full_design_wh": 57.0,
        "present": True,
        "temperature_c": 25.1,
    }
    assert payloads["AC"] == {
        "supply": "AC",
        "type": "Mains",
        "status": None,
        "online": True,
        "capacity": None,
        "voltage_v": None,
        "current_a": None,
        "power_w": None,
    }


def test_power_now_wins_over_the_computed_product(laptop: Path) -> None:
    bat1 = by_supply(PowerSupplyDriver({"root": str(laptop)}))["BAT1"]
    assert bat1["power_w"] == 9.0
    assert bat1["current_a"] == -0.5  # sign kept as the kernel driver reports it
    assert bat1["charge_now_ah"] == 2.0
    assert bat1["charge_full_ah"] == 4.8
    assert "energy_now_wh" not in bat1  # energy and charge only where the kernel has them


def test_a_computed_power_is_unsigned_like_power_now(laptop: Path) -> None:
    (laptop / "BAT1" / "power_now").unlink()
    bat1 = by_supply(PowerSupplyDriver({"root": str(laptop)}))["BAT1"]
    assert bat1["power_w"] == pytest.approx(1.85)


def test_garbage_values_become_null_and_the_rest_is_reported(laptop: Path) -> None:
    bat0 = laptop / "BAT0"
    (bat0 / "voltage_now").write_text("not a number\n")
    (bat0 / "capacity").write_text("250\n")  # outside 0..100
    (bat0 / "energy_now").write_bytes(b"\xff\xfe\n")  # not even text
    (bat0 / "status").write_text("")  # empty
    payload = by_supply(PowerSupplyDriver({"root": str(laptop)}))["BAT0"]
    assert payload["voltage_v"] is None
    assert payload["capacity"] is None
    assert payload["energy_now_wh"] is None
    assert payload["status"] is None
    assert payload["power_w"] is None  # V * A needs V
    assert payload["current_a"] == 1.5
    assert payload["type"] == "Battery"


def test_an_unreadable_attribute_becomes_null(laptop: Path) -> None:
    # A directory where a file should be: reading it fails with an OSError (EISDIR),
    # as reading a sleeping HID battery fails with ENODATA.
    (laptop / "BAT1" / "capacity").unlink()
    (laptop / "BAT1" / "capacity").mkdir()
    payload = by_supply(PowerSupplyDriver({"root": str(laptop)}))["BAT1"]
    assert payload["capacity"] is None
    assert payload["voltage_v"] == 3.7


def test_a_supply_with_nothing_readable_is_skipped_when_reading_all(laptop: Path) -> None:
    supply(laptop, "hid-mouse-battery", capacity="?", status="")
    payloads = by_supply(PowerSupplyDriver({"root": str(laptop)}))
    assert sorted(payloads) == ["AC", "BAT0", "BAT1"]


def test_a_named_supply_with_nothing_readable_is_a_driver_error(laptop: Path) -> None:
    supply(laptop, "hid-mouse-battery", capacity="?", status="")
    driver = PowerSupplyDriver({"root": str(laptop), "supplies": ["BAT0", "hid-mouse-battery"]})
    with pytest.raises(DriverError, match="'hid-mouse-battery': no readable values"):
        driver.read()


def test_nothing_readable_anywhere_is_a_driver_error(tmp_path: Path) -> None:
    supply(tmp_path, "BAT0", capacity="garbage", voltage_now="x")
    with pytest.raises(DriverError, match="no readable values in any power supply"):
        PowerSupplyDriver({"root": str(tmp_path)}).read()


def test_only_the_named_supplies_are_read_in_the_given_order(laptop: Path) -> None:
    samples = PowerSupplyDriver({"root": str(laptop), "supplies": ["BAT1", "AC"]}).read()
    assert [s.payload["supply"] for s in samples] == ["BAT1", "AC"]


def test_a_missing_named_supply_is_a_driver_error_listing_what_is_there(laptop: Path) -> None:
    driver = PowerSupplyDriver({"root": str(laptop), "supplies": ["BAT9"]})
    with pytest.raises(DriverError, match=r"'BAT9' not found .*\(present: AC, BAT0, BAT1\)"):
        driver.read()


NO_SUPPLY_FIELDS = (
    "supply", "type", "status", "online", "capacity", "voltage_v", "current_a", "power_w",
)  # fmt: skip


@pytest.mark.parametrize("exists, why", [(True, "is empty"), (False, "does not exist")])
def test_a_node_without_a_supply_reads_nulls_with_a_note(
    tmp_path: Path, exists: bool, why: str
) -> None:
    # A Raspberry Pi or a VM: no battery, no adapter. Not an error, so the sensor (and a
    # deploy gate that counts sensor errors) stays healthy; the note says why it is empty.
    root = tmp_path / "power_supply"
    if exists:
        root.mkdir()
    [sample] = PowerSupplyDriver({"root": str(root)}).read()
    assert_json_payload(sample.payload)
    assert sample.sensor_type == "power_supply"
    assert {key: sample.payload[key] for key in NO_SUPPLY_FIELDS} == dict.fromkeys(NO_SUPPLY_FIELDS)
    assert sample.payload["note"] == f"no power supply: {str(root)!r} {why}"
    assert set(sample.payload) == {*NO_SUPPLY_FIELDS, "note"}


def test_a_directory_without_subdirectories_counts_as_empty(tmp_path: Path) -> None:
    (tmp_path / "uevent").write_text("")  # a stray file is not a supply
    [sample] = PowerSupplyDriver({"root": str(tmp_path)}).read()
    assert sample.payload["note"].endswith("is empty")


def test_a_named_supply_under_a_missing_root_is_still_a_driver_error(tmp_path: Path) -> None:
    # The operator asked for BAT0 on this node: its absence is a fault, not a note.
    missing = tmp_path / "no-sysfs"
    driver = PowerSupplyDriver({"root": str(missing), "supplies": ["BAT0"]})
    with pytest.raises(DriverError, match="does not exist") as caught:
        driver.read()
    assert str(missing) in str(caught.value)


def test_a_named_supply_under_an_empty_root_is_still_a_driver_error(tmp_path: Path) -> None:
    driver = PowerSupplyDriver({"root": str(tmp_path), "supplies": ["BAT0"]})
    with pytest.raises(DriverError, match=r"'BAT0' not found .*\(present: none\)"):
        driver.read()


def test_the_real_sysfs_reads_or_fails_cleanly() -> None:
    # Whatever this machine has (often nothing in a VM, which reads as nulls with a note),
    # the result is samples or DriverError.
    driver = PowerSupplyDriver({})
    try:
        samples = driver.read()
    except DriverError as exc:
        assert "/sys/class/power_supply" in str(exc)
    else:
        assert samples
        for sample in samples:
            assert_json_payload(sample.payload)
            if "note" in sample.payload:
                assert "/sys/class/power_supply" in sample.payload["note"]


def test_registered_under_its_type_name_with_documented_options() -> None:
    assert resolve_driver("power_supply") is PowerSupplyDriver
    assert PowerSupplyDriver.description
    assert all(option.help for option in PowerSupplyDriver.options)


def test_defaults() -> None:
    assert PowerSupplyDriver.validate_options({}) == {
        "root": "/sys/class/power_supply",
        "supplies": [],
    }


def test_validated_options_construct_the_driver_as_the_config_loader_does() -> None:
    options = PowerSupplyDriver.validate_options({})
    assert (
        PowerSupplyDriver.validate_options(options) == options
    )  # validating twice changes nothing
    assert PowerSupplyDriver(options).config == options


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"rot": "/sys"}, "rot"),
        ({"root": 5}, "root"),
        ({"root": ""}, "root"),
        ({"supplies": "BAT0"}, "supplies"),
        ({"supplies": ["BAT0", 1]}, "supplies"),
        ({"supplies": ["../etc"]}, "supplies"),
        ({"supplies": [""]}, "supplies"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        PowerSupplyDriver.validate_options(raw)
    assert caught.value.key == key

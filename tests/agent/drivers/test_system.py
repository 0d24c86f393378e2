"""System driver against the real psutil of this machine: shapes and invariants."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from beam_agent.drivers import resolve_driver
from beam_agent.drivers.base import OptionError
from beam_agent.drivers.system import SystemDriver, busy_percent, temperature_readings

from tests.support.readings import assert_json_payload

# The shape psutil.sensors_temperatures() documents for its entries (its own class lives in a
# private module that has moved between psutil releases).
shwtemp = namedtuple("shwtemp", ["label", "current", "high", "critical"])


def read_payload(driver: SystemDriver) -> dict[str, Any]:
    [sample] = driver.read()
    assert sample.sensor_type == "system"
    return assert_json_payload(sample.payload)


@pytest.fixture
def cpu_burner() -> Iterator[subprocess.Popen[bytes]]:
    """A real process spinning on one core."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_full_reading_has_every_group_with_sane_values() -> None:
    payload = read_payload(SystemDriver({}))

    assert 0.0 <= payload["cpu_percent"] <= 100.0
    cores = payload["cpu_percent_per_core"]
    assert len(cores) == psutil.cpu_count()
    assert all(0.0 <= core <= 100.0 for core in cores)
    assert payload["cpu_freq_mhz"] is None or payload["cpu_freq_mhz"] > 0
    assert all(payload[key] >= 0 for key in ("load_1", "load_5", "load_15"))

    assert payload["memory_total_bytes"] > 0
    assert 0 < payload["memory_available_bytes"] <= payload["memory_total_bytes"]
    assert 0 < payload["memory_used_bytes"] <= payload["memory_total_bytes"]
    assert 0.0 <= payload["memory_percent"] <= 100.0
    assert 0 <= payload["swap_used_bytes"] <= payload["swap_total_bytes"]
    assert 0.0 <= payload["swap_percent"] <= 100.0

    root = payload["disks"]["/"]
    assert root["total_bytes"] > 0
    assert 0 <= root["used_bytes"] <= root["total_bytes"]
    assert 0 <= root["free_bytes"] <= root["total_bytes"]
    assert 0.0 <= root["percent"] <= 100.0

    assert isinstance(payload["temperatures_c"], dict)
    assert set(payload["temperatures_c"]) == set(
        temperature_readings(psutil.sensors_temperatures())
    )

    network = payload["network"]
    assert "lo" in network  # every Linux has a loopback interface
    for counters in network.values():
        assert set(counters) == {
            "bytes_in", "bytes_out", "packets_in", "packets_out",
            "errors_in", "errors_out", "drops_in", "drops_out",
        }  # fmt: skip
        assert all(isinstance(v, int) and v >= 0 for v in counters.values())

    top = payload["top_processes"]
    assert 1 <= len(top) <= 5
    for entry in top:
        assert set(entry) == {"name", "pid", "cpu_percent", "memory_percent"}
        assert isinstance(entry["name"], str) and entry["pid"] > 0
        assert entry["cpu_percent"] >= 0 and 0 <= entry["memory_percent"] <= 100
    cpu = [entry["cpu_percent"] for entry in top]
    assert cpu == sorted(cpu, reverse=True)


def test_cpu_percent_is_measured_on_the_very_first_read(
    cpu_burner: subprocess.Popen[bytes],
) -> None:
    # psutil.cpu_percent(None) returns 0.0 on its first call; this driver must not.
    payload = read_payload(SystemDriver({"top_processes": 0}))
    assert payload["cpu_percent"] > 0.0
    assert max(payload["cpu_percent_per_core"]) > 0.0


def test_a_process_burning_cpu_is_among_the_top_processes(
    cpu_burner: subprocess.Popen[bytes],
) -> None:
    driver = SystemDriver({"top_processes": 10, "cpu": False, "network": False})
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:  # each read covers the time since the last
        top = read_payload(driver)["top_processes"]
        found = [entry for entry in top if entry["pid"] == cpu_burner.pid]
        if not found:
            time.sleep(0.2)
    assert found, "the spinning process never showed up among the top processes"
    assert found[0]["cpu_percent"] > 0.0
    assert found[0]["name"].startswith("python")


def test_later_reads_measure_the_time_since_the_previous_read() -> None:
    driver = SystemDriver({"memory": False, "disks": False, "network": False})
    first = read_payload(driver)
    second = read_payload(driver)
    for payload in (first, second):
        assert 0.0 <= payload["cpu_percent"] <= 100.0
        assert len(payload["cpu_percent_per_core"]) == psutil.cpu_count()


def test_groups_can_be_switched_off() -> None:
    options = {"cpu": False, "memory": False, "disks": False, "temperatures": False,
               "network": False, "top_processes": 3}  # fmt: skip
    payload = read_payload(SystemDriver(options))
    assert set(payload) == {"top_processes"}
    payload = read_payload(SystemDriver({**options, "top_processes": 0, "memory": True}))
    assert "top_processes" not in payload
    assert "memory_percent" in payload and "cpu_percent" not in payload


def test_a_missing_mount_is_null_and_the_others_are_still_reported() -> None:
    payload = read_payload(SystemDriver({"mounts": ["/", "/no/such/mount"], "top_processes": 0}))
    assert payload["disks"]["/no/such/mount"] is None
    assert payload["disks"]["/"]["total_bytes"] > 0


def test_only_the_named_interfaces_are_reported() -> None:
    options = {"interfaces": ["lo", "no-such-nic"], "top_processes": 0}
    payload = read_payload(SystemDriver(options))
    assert list(payload["network"]) == ["lo"]


def test_busy_percent_from_two_snapshots() -> None:
    before = psutil.cpu_times()
    after = before._replace(user=before.user + 3.0, idle=before.idle + 1.0)
    assert busy_percent(before, after) == 75.0
    waiting = before._replace(idle=before.idle + 1.0, iowait=before.iowait + 1.0)
    assert busy_percent(before, waiting) == 0.0  # waiting on I/O is not busy
    assert busy_percent(before, before) == 0.0  # no time passed: no division by zero


def test_temperature_names_are_flat_and_never_collide() -> None:
    sensors = {
        "cpu_thermal": [shwtemp("", 45.2, None, None)],
        "coretemp": [
            shwtemp("Package id 0", 50.0, 80.0, 100.0),
            shwtemp("Core 0", 48.0, 80.0, 100.0),
            shwtemp("Core 0", 49.0, 80.0, 100.0),
        ],
        "nvme": [shwtemp("", 30.0, None, None), shwtemp("", float("nan"), None, None)],
    }
    assert temperature_readings(sensors) == {
        "cpu_thermal": 45.2,
        "coretemp/Package id 0": 50.0,
        "coretemp/Core 0": 48.0,
        "coretemp/Core 0/3": 49.0,
        "nvme/1": 30.0,
        "nvme/2": None,
    }


def test_registered_under_its_type_name_with_documented_options() -> None:
    assert resolve_driver("system") is SystemDriver
    assert SystemDriver.description
    assert all(option.help for option in SystemDriver.options)


def test_defaults() -> None:
    options = SystemDriver.validate_options({})
    assert options["mounts"] == ["/"]
    assert options["top_processes"] == 5
    assert options["interfaces"] == []
    assert all(options[group] is True for group in ("cpu", "memory", "disks", "network"))


def test_validated_options_construct_the_driver_as_the_config_loader_does() -> None:
    options = SystemDriver.validate_options({})
    assert SystemDriver.validate_options(options) == options  # validating twice changes nothing
    assert SystemDriver(options).config == options


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"mount": ["/"]}, "mount"),
        ({"mounts": "/"}, "mounts"),
        ({"mounts": ["/", 3]}, "mounts"),
        ({"mounts": ["data"]}, "mounts"),
        ({"top_processes": -1}, "top_processes"),
        ({"top_processes": 1000}, "top_processes"),
        ({"top_processes": "5"}, "top_processes"),
        ({"interfaces": [""]}, "interfaces"),
        ({"network": "yes"}, "network"),
        ({"cpu": 1}, "cpu"),
        (
            {
                "cpu": False,
                "memory": False,
                "disks": False,
                "temperatures": False,
                "network": False,
                "top_processes": 0,
            },
            "top_processes",
        ),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        SystemDriver.validate_options(raw)
    assert caught.value.key == key

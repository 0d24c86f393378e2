"""sensor_facts over a faked I2C bus (smbus2's interface) and a faked port listing."""

from __future__ import annotations

import errno

from ansible_collections.beam.fleet.plugins.module_utils import discovery
from ansible_collections.beam.fleet.plugins.modules import sensor_facts
from serial.tools.list_ports_common import ListPortInfo


class FakeSMBus:
    """Answers like smbus2.SMBus with a BME280 at 0x76 and an EEPROM at 0x50."""

    present = {0x76, 0x50}
    opened: list[int] = []
    probes: list[tuple[str, int]] = []

    def __init__(self, bus):
        if bus == 9:
            raise OSError(errno.EACCES, "Permission denied")
        self.opened.append(bus)
        self.closed = False

    def write_quick(self, address):
        self.probes.append(("quick", address))
        if address not in self.present:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def read_byte(self, address):
        self.probes.append(("read", address))
        if address not in self.present:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return 0

    def close(self):
        self.closed = True


def usb_port(device, vid, pid, serial):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number = vid, pid, serial
    info.description = "FT232R USB UART"
    info.hwid = f"USB VID:PID={vid:04X}:{pid:04X} SER={serial}"
    return info


def params(dev_dir, **extra):
    base = {"i2c": True, "i2c_scan": True, "i2c_buses": [], "serial": True,
            "agent_venv": str(dev_dir / "no-venv"), "dev_dir": str(dev_dir)}
    base.update(extra)
    return base


def make_dev(tmp_path):
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    for name in ("i2c-1", "i2c-9", "ttyUSB0", "ttyAMA0", "i2c-x"):
        (dev / name).touch()
    (dev / "serial" / "by-id" / "usb-FTDI_FT232R_A50285BI-if00-port0").symlink_to(dev / "ttyUSB0")
    return dev


def test_discovers_buses_addresses_and_ports(tmp_path):
    dev = make_dev(tmp_path)
    FakeSMBus.probes.clear()
    found = sensor_facts.discover(
        params(dev), open_bus=FakeSMBus,
        comports=lambda: [usb_port(str(dev / "ttyUSB0"), 0x0403, 0x6001, "A50285BI")],
    )
    bus1, bus9 = found["i2c"]
    assert bus1["addresses"] == [0x50, 0x76]
    assert bus1["found"][1]["sensor_type"] == "bme280"
    assert "Permission denied" in bus9["error"]
    # EEPROM range is probed by reading, never by a quick write
    assert ("read", 0x50) in FakeSMBus.probes and ("quick", 0x50) not in FakeSMBus.probes
    assert ("quick", 0x76) in FakeSMBus.probes
    (port,) = found["serial"]
    assert port["usb_vendor"] == "FTDI"
    assert port["by_id"].endswith("usb-FTDI_FT232R_A50285BI-if00-port0")
    assert {"name": "bme280_1_76", "type": "bme280", "bus": 1, "address": 0x76} in found["suggestions"]
    assert any(s["type"] == "serial_lines" and s["port"] == port["by_id"] for s in found["suggestions"])
    assert found["warnings"] == []


def test_without_scan_lists_buses_only(tmp_path):
    dev = make_dev(tmp_path)
    found = sensor_facts.discover(params(dev, i2c_scan=False, serial=False, i2c_buses=[1]), open_bus=FakeSMBus)
    assert found["i2c"] == [{"bus": 1, "device": "/dev/i2c-1", "addresses": [], "found": []}]
    assert found["serial"] == []


def test_the_bus_is_closed_after_a_scan(tmp_path):
    buses = []

    class Recorder(FakeSMBus):
        def __init__(self, bus):
            super().__init__(bus)
            buses.append(self)

    discovery.scan_bus(1, Recorder)
    assert buses and buses[0].closed


def test_ports_without_pyserial_come_from_dev(tmp_path):
    dev = make_dev(tmp_path)
    assert [p["device"] for p in discovery.serial_ports_without_pyserial(str(dev))] == [
        str(dev / "ttyAMA0"), str(dev / "ttyUSB0")
    ]


def test_module_returns_facts(tmp_path, capsys, monkeypatch):
    from conftest import run_module

    dev = make_dev(tmp_path)
    monkeypatch.setattr("smbus2.SMBus", FakeSMBus)
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    result, failed = run_module(sensor_facts.main, params(dev, i2c_buses=[1]), capsys)
    assert not failed
    assert result["changed"] is False
    assert result["ansible_facts"]["beam_sensors_discovered"]["i2c"][0]["addresses"] == [0x50, 0x76]

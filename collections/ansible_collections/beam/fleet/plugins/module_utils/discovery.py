# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What is attached to a node: I2C buses and the addresses that answer, serial ports.

Why: an operator configures sensors in the inventory by bus, address and port; seeing
what a node actually has (before writing config) turns "no answer from 0x76" into a
two-second check. The functions take their hardware access as arguments, so tests fake
only the bus (smbus2's SMBus interface) and the port listing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import sys

# Addresses i2cdetect probes with a read rather than a quick write (EEPROMs and the like
# can be corrupted by a quick write), as i2cdetect's auto mode does.
READ_PROBE = set(range(0x30, 0x38)) | set(range(0x50, 0x60))
FIRST_ADDRESS = 0x08
LAST_ADDRESS = 0x77

# What an answering address probably is, and which sensor type reads it.
I2C_HINTS = {
    0x76: {"chip": "BME280/BMP280 (SDO to GND)", "type": "bme280"},
    0x77: {"chip": "BME280/BMP280/BME680 (SDO to VDDIO)", "type": "bme280"},
}
# USB serial adapters seen on Geiger counters and sensor boards: vid -> maker.
USB_SERIAL_VENDORS = {
    0x0403: "FTDI",
    0x10C4: "Silicon Labs CP210x",
    0x1A86: "QinHeng CH340",
    0x067B: "Prolific PL2303",
    0x2341: "Arduino",
    0x239A: "Adafruit",
}
SERIAL_GLOBS = ("ttyUSB*", "ttyACM*", "ttyAMA*", "ttyS0", "serial0", "serial1")


def add_agent_venv(venv):
    """Let this interpreter import smbus2 and pyserial from the agent's virtual environment.

    Why: they are installed there, not in the system Python that runs modules.
    """
    if not venv:
        return
    for site in sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))):
        if site not in sys.path:
            sys.path.append(site)


def i2c_buses(dev_dir="/dev"):
    """Bus numbers with a /dev/i2c-N node, sorted."""
    buses = []
    for path in glob.glob(os.path.join(dev_dir, "i2c-*")):
        match = re.match(r"^i2c-(\d+)$", os.path.basename(path))
        if match:
            buses.append(int(match.group(1)))
    return sorted(buses)


def probe_address(bus, address):
    """True when a device acknowledges at address (i2cdetect's auto probe)."""
    try:
        if address in READ_PROBE:
            bus.read_byte(address)
        else:
            bus.write_quick(address)
    except (IOError, OSError):
        return False
    return True


def scan_bus(number, open_bus, first=FIRST_ADDRESS, last=LAST_ADDRESS):
    """Addresses that answer on one bus: a dict with the bus, addresses and chip hints."""
    entry = {"bus": number, "device": "/dev/i2c-%d" % number, "addresses": [], "found": []}
    try:
        bus = open_bus(number)
    except (IOError, OSError) as exc:
        entry["error"] = "cannot open /dev/i2c-%d: %s" % (number, exc)
        return entry
    try:
        for address in range(first, last + 1):
            if probe_address(bus, address):
                entry["addresses"].append(address)
                hint = I2C_HINTS.get(address, {})
                entry["found"].append(
                    {"address": address, "hex": "0x%02x" % address,
                     "chip": hint.get("chip"), "sensor_type": hint.get("type")}
                )
    finally:
        close = getattr(bus, "close", None)
        if close is not None:
            close()
    return entry


def serial_ports(comports, dev_dir="/dev"):
    """Serial ports with what USB says about them, and their stable /dev/serial/by-id name."""
    by_id = {}
    for link in glob.glob(os.path.join(dev_dir, "serial", "by-id", "*")):
        by_id[os.path.realpath(link)] = link
    ports = []
    for info in comports():
        device = info.device
        vid = getattr(info, "vid", None)
        ports.append({
            "device": device,
            "by_id": by_id.get(os.path.realpath(device)),
            "description": getattr(info, "description", None),
            "hwid": getattr(info, "hwid", None),
            "vid": vid,
            "pid": getattr(info, "pid", None),
            "serial_number": getattr(info, "serial_number", None),
            "manufacturer": getattr(info, "manufacturer", None),
            "product": getattr(info, "product", None),
            "usb_vendor": USB_SERIAL_VENDORS.get(vid) if vid is not None else None,
        })
    return sorted(ports, key=lambda port: port["device"])


def serial_ports_without_pyserial(dev_dir="/dev"):
    """Device nodes that look like serial ports, when pyserial is not available."""
    found = set()
    for pattern in SERIAL_GLOBS:
        found.update(glob.glob(os.path.join(dev_dir, pattern)))
    return [{"device": path} for path in sorted(found)]


def suggestions(i2c, serial):
    """[[sensor]] tables an operator can start from, for what was found."""
    tables = []
    for bus in i2c:
        for item in bus.get("found", []):
            if item.get("sensor_type"):
                tables.append({
                    "name": "%s_%d_%s" % (item["sensor_type"], bus["bus"], item["hex"][2:]),
                    "type": item["sensor_type"],
                    "bus": bus["bus"],
                    "address": item["address"],
                })
    for port in serial:
        if port.get("vid") is not None:
            tables.append({
                "name": "serial_%s" % os.path.basename(port["device"]).lower(),
                "type": "serial_lines",
                "port": port.get("by_id") or port["device"],
                "pattern": "(?P<value>[-0-9.]+)",
            })
    return tables

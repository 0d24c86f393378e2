#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sensor_facts
short_description: Discover the I2C devices and serial ports attached to a node
version_added: "0.1.0"
description:
  - Lists the node's I2C buses and the addresses that answer on each (through smbus2, the way
    C(i2cdetect) probes), and its serial ports with their USB vendor and stable
    C(/dev/serial/by-id) names (through pyserial), so an operator sees what is attached before
    declaring sensors in the inventory.
  - Suggests C([[sensor]]) tables for what it recognises (for example a BME280 at 0x76).
  - smbus2 and pyserial are taken from the agent's virtual environment when the system Python lacks them.
options:
  i2c:
    description: Discover I2C buses.
    type: bool
    default: true
  i2c_scan:
    description:
      - Probe every address from 0x08 to 0x77 on each bus. The probe is a quick write, or a read
        for 0x30-0x37 and 0x50-0x5f, exactly as C(i2cdetect -y) does; turn it off on buses with
        devices that misbehave when probed.
    type: bool
    default: true
  i2c_buses:
    description: Only these bus numbers. All buses with a C(/dev/i2c-N) node when empty.
    type: list
    elements: int
    default: []
  serial:
    description: Discover serial ports.
    type: bool
    default: true
  agent_venv:
    description: Virtual environment whose smbus2 and pyserial are used when the system Python has none.
    type: path
    default: /opt/beam/agent/current/venv
  dev_dir:
    description: Device directory (for tests and chroots).
    type: path
    default: /dev
extends_documentation_fragment:
  - beam.fleet.attributes
  - beam.fleet.attributes.read_only
attributes:
  facts:
    support: full
    description: Sets C(beam_sensors_discovered).
  platform:
    description: Runs on the node; needs read access to C(/dev/i2c-*) (root or the i2c group).
author:
  - beam-fleet contributors (@beam-fleet)
seealso:
  - module: beam.fleet.agent_health
"""

EXAMPLES = r"""
- name: See what is attached to the Pis
  beam.fleet.sensor_facts:

- name: Show the sensor tables to start from
  ansible.builtin.debug:
    var: ansible_facts.beam_sensors_discovered.suggestions

- name: Serial ports only
  beam.fleet.sensor_facts:
    i2c: false
"""

RETURN = r"""
ansible_facts:
  description: Facts about attached sensors.
  returned: always
  type: dict
  contains:
    beam_sensors_discovered:
      description: What was found.
      returned: always
      type: dict
      contains:
        i2c:
          description:
            - One entry per bus, with C(bus), C(device), C(addresses) that answered, C(found) with
              chip hints, and C(error) when the bus could not be opened.
          type: list
          elements: dict
          returned: always
          sample:
            - bus: 1
              device: /dev/i2c-1
              addresses: [118]
              found: [{address: 118, hex: "0x76", chip: "BME280/BMP280 (SDO to GND)", sensor_type: bme280}]
        serial:
          description:
            - One entry per serial port, with C(device), C(by_id), C(description), C(vid), C(pid),
              C(serial_number), C(usb_vendor).
          type: list
          elements: dict
          returned: always
          sample:
            - device: /dev/ttyUSB0
              by_id: /dev/serial/by-id/usb-FTDI_FT232R_A50285BI-if00-port0
              vid: 1027
              pid: 24577
              usb_vendor: FTDI
        suggestions:
          description: C([[sensor]]) tables for recognised devices, to copy into the inventory.
          type: list
          elements: dict
          returned: always
          sample: [{name: bme280_1_76, type: bme280, bus: 1, address: 118}]
        warnings:
          description: What could not be discovered and why (for example smbus2 missing).
          type: list
          elements: str
          returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.beam.fleet.plugins.module_utils import discovery


def discover(params, open_bus=None, comports=None):
    """The facts for these module parameters; hardware access is injectable for tests."""
    warnings = []
    dev_dir = params["dev_dir"]
    discovery.add_agent_venv(params["agent_venv"])
    i2c = []
    if params["i2c"]:
        buses = discovery.i2c_buses(dev_dir)
        if params["i2c_buses"]:
            buses = [bus for bus in buses if bus in params["i2c_buses"]]
        if open_bus is None and params["i2c_scan"] and buses:
            try:
                from smbus2 import SMBus
                open_bus = SMBus
            except ImportError:
                warnings.append("smbus2 is not installed: I2C buses are listed but not scanned")
        for number in buses:
            if params["i2c_scan"] and open_bus is not None:
                i2c.append(discovery.scan_bus(number, open_bus))
            else:
                i2c.append({"bus": number, "device": "/dev/i2c-%d" % number, "addresses": [], "found": []})
    serial = []
    if params["serial"]:
        if comports is None:
            try:
                from serial.tools.list_ports import comports
            except ImportError:
                warnings.append("pyserial is not installed: serial ports are listed from %s only" % dev_dir)
        if comports is not None:
            serial = discovery.serial_ports(comports, dev_dir)
        else:
            serial = discovery.serial_ports_without_pyserial(dev_dir)
    return {
        "i2c": i2c,
        "serial": serial,
        "suggestions": discovery.suggestions(i2c, serial),
        "warnings": warnings,
    }


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            i2c=dict(type="bool", default=True),
            i2c_scan=dict(type="bool", default=True),
            i2c_buses=dict(type="list", elements="int", default=[]),
            serial=dict(type="bool", default=True),
            agent_venv=dict(type="path", default="/opt/beam/agent/current/venv"),
            dev_dir=dict(type="path", default="/dev"),
        ),
        supports_check_mode=True,
    )
    found = discover(module.params)
    for warning in found["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"beam_sensors_discovered": found})


def main():
    run_module()


if __name__ == "__main__":
    main()

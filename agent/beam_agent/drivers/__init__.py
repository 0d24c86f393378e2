"""The driver registry: built-in types by name, plugins by entry point or 'module:Class'."""

from __future__ import annotations

import importlib
import sys
from typing import Optional

from beam_agent.drivers.base import Driver, DriverError, Option, OptionError

__all__ = [
    "BUILTIN_DRIVERS",
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverError",
    "DriverLoadError",
    "Option",
    "OptionError",
    "available_drivers",
    "load_driver",
    "resolve_driver",
]

ENTRY_POINT_GROUP = "beam_agent.drivers"

BUILTIN_DRIVERS: dict[str, str] = {
    "system": "beam_agent.drivers.system:SystemDriver",
    "power_supply": "beam_agent.drivers.power_supply:PowerSupplyDriver",
    "bme280": "beam_agent.drivers.bme280:BME280Driver",
    "mightyohm": "beam_agent.drivers.mightyohm:MightyOhmDriver",
    "serial_lines": "beam_agent.drivers.serial_lines:SerialLinesDriver",
    "tcp_json": "beam_agent.drivers.tcp_json:TcpJsonDriver",
    "http_json": "beam_agent.drivers.http_json:HttpJsonDriver",
    "mqtt": "beam_agent.drivers.mqtt:MqttDriver",
    "command": "beam_agent.drivers.command:CommandDriver",
    "virtual": "beam_agent.drivers.virtual:VirtualDriver",
}


class DriverLoadError(Exception):
    """A driver reference could not be imported or is not a Driver subclass."""


def load_driver(reference: str) -> type[Driver]:
    """Import 'package.module:ClassName' and check that it is a Driver."""
    module_name, sep, class_name = reference.partition(":")
    if not sep or not module_name or not class_name:
        raise DriverLoadError(f"{reference!r} is not of the form 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in any way a third-party module likes
        raise DriverLoadError(f"cannot import {module_name!r}: {exc}") from exc
    driver_class = getattr(module, class_name, None)
    if not (isinstance(driver_class, type) and issubclass(driver_class, Driver)):
        raise DriverLoadError(f"{reference!r} is not a beam_agent Driver class")
    return driver_class


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        found = entry_points(group=ENTRY_POINT_GROUP)
    else:  # Python 3.9 returns a dict of groups
        found = entry_points().get(ENTRY_POINT_GROUP, [])
    return {ep.name: ep.value for ep in found}


def resolve_driver(type_name: str, reference: Optional[str] = None) -> type[Driver]:
    """Find the class for a [[sensor]]: explicit `driver`, then built-ins, then entry points."""
    if reference:
        return load_driver(reference)
    if type_name in BUILTIN_DRIVERS:
        return load_driver(BUILTIN_DRIVERS[type_name])
    plugins = _entry_points()
    if type_name in plugins:
        return load_driver(plugins[type_name])
    known = ", ".join(sorted({*BUILTIN_DRIVERS, *plugins}))
    raise DriverLoadError(f"unknown sensor type {type_name!r} (known: {known})")


def available_drivers() -> dict[str, str]:
    """Every driver type this agent can run, name -> 'module:Class'."""
    return {**_entry_points(), **BUILTIN_DRIVERS}

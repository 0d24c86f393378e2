"""Power supplies from Linux sysfs: batteries, mains and USB adapters, UPS HID devices.

The kernel exposes each supply as a directory of one-value text files under
/sys/class/power_supply (Documentation/ABI/testing/sysfs-class-power). Values are in
micro-units (µV, µA, µW, µWh, µAh); the payload carries SI units. Which files exist
depends on the kernel driver, and some reads fail while a device sleeps (ENODATA), so
every field is read on its own: a missing, unreadable or garbled file becomes None and
the rest of the supply is still reported.

A node without any supply (a Raspberry Pi, a VM: the directory is empty or absent) is not
a failing sensor: reading all supplies then gives one sample whose fields are all None and
whose `note` says why, so a fleet-wide sensor does not fail such a node's deploy gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from beam_agent.drivers.base import Driver, DriverError, Option, OptionError
from beam_agent.reading import Sample

MICRO = 1e-6

ENERGY_FILES = {  # µWh -> Wh, reported only where the kernel driver provides them
    "energy_now": "energy_now_wh",
    "energy_full": "energy_full_wh",
    "energy_full_design": "energy_full_design_wh",
}
CHARGE_FILES = {  # µAh -> Ah
    "charge_now": "charge_now_ah",
    "charge_full": "charge_full_ah",
    "charge_full_design": "charge_full_design_ah",
}


def read_text(path: Path) -> Optional[str]:
    """A sysfs attribute's value, or None when it is absent or cannot be read right now."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def read_int(path: Path) -> Optional[int]:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def scaled(value: Optional[int], factor: float = MICRO) -> Optional[float]:
    return None if value is None else round(value * factor, 6)


def read_supply(directory: Path) -> dict[str, Any]:
    """Every field of one supply; values that cannot be read are None."""
    voltage_v = scaled(read_int(directory / "voltage_now"))
    current_a = scaled(read_int(directory / "current_now"))
    power_w = scaled(read_int(directory / "power_now"))
    if power_w is None and voltage_v is not None and current_a is not None:
        # Like power_now, unsigned: some drivers report a discharge current as negative.
        power_w = round(abs(voltage_v * current_a), 6)
    online = read_int(directory / "online")
    capacity = read_int(directory / "capacity")
    payload: dict[str, Any] = {
        "supply": directory.name,
        "type": read_text(directory / "type"),
        "status": read_text(directory / "status"),
        "online": None if online is None else online != 0,
        "capacity": capacity if capacity is None or 0 <= capacity <= 100 else None,
        "voltage_v": voltage_v,
        "current_a": current_a,
        "power_w": power_w,
    }
    for files in (ENERGY_FILES, CHARGE_FILES):
        for name, key in files.items():
            if (directory / name).exists():
                payload[key] = scaled(read_int(directory / name))
    if (directory / "present").exists():
        present = read_int(directory / "present")
        payload["present"] = None if present is None else present != 0
    if (directory / "temp").exists():  # tenths of a degree Celsius
        payload["temperature_c"] = scaled(read_int(directory / "temp"), 0.1)
    return payload


SUPPLY_FIELDS = (
    "supply",
    "type",
    "status",
    "online",
    "capacity",
    "voltage_v",
    "current_a",
    "power_w",
)


def no_supply(root: Path, why: str) -> dict[str, Any]:
    """The sample of a node without power supplies: every usual field null, and a note."""
    payload: dict[str, Any] = dict.fromkeys(SUPPLY_FIELDS)
    payload["note"] = f"no power supply: {str(root)!r} {why}"
    return payload


def has_values(payload: Mapping[str, Any]) -> bool:
    return any(value is not None for key, value in payload.items() if key != "supply")


class PowerSupplyDriver(Driver):
    type_name = "power_supply"
    description = (
        "Batteries and adapters from Linux /sys/class/power_supply: status, "
        "capacity, voltage, current, power, energy; one reading per supply."
    )
    options = (
        Option(
            "root",
            str,
            "/sys/class/power_supply",
            help="sysfs directory holding one directory per supply",
        ),
        Option(
            "supplies",
            list,
            [],
            help='names of the supplies to report, e.g. ["BAT0", "AC"]; empty for all. '
            "A named supply must exist and be readable; with all, unreadable "
            "ones are skipped, and a node without any gives one reading of nulls "
            "with a note",
        ),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.root = Path(self.config["root"])
        self.supplies: list[str] = list(self.config["supplies"])

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        validated = super().validate_options(raw)
        if not validated["root"]:
            raise OptionError("root", "must not be empty")
        for index, name in enumerate(validated["supplies"]):
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                raise OptionError(
                    "supplies", f"item {index} must be a supply name such as 'BAT0', got {name!r}"
                )
        return validated

    def read(self) -> list[Sample]:
        if not self.root.is_dir():
            if self.supplies:
                raise DriverError(f"power supply directory {str(self.root)!r} does not exist")
            return [self.sample(no_supply(self.root, "does not exist"))]
        try:
            present = sorted(entry.name for entry in self.root.iterdir() if entry.is_dir())
        except OSError as exc:
            raise DriverError(f"cannot list {str(self.root)!r}: {exc}") from None
        if self.supplies:
            return [self._read_named(name, present) for name in self.supplies]
        if not present:
            return [self.sample(no_supply(self.root, "is empty"))]
        payloads = [read_supply(self.root / name) for name in present]
        readable = [payload for payload in payloads if has_values(payload)]
        if not readable:
            raise DriverError(
                f"no readable values in any power supply under "
                f"{str(self.root)!r} ({', '.join(present)})"
            )
        return [self.sample(payload) for payload in readable]

    def _read_named(self, name: str, present: list[str]) -> Sample:
        if name not in present:
            found = ", ".join(present) or "none"
            raise DriverError(
                f"power supply {name!r} not found under {str(self.root)!r} (present: {found})"
            )
        payload = read_supply(self.root / name)
        if not has_values(payload):
            raise DriverError(
                f"power supply {name!r}: no readable values in {str(self.root / name)!r}"
            )
        return self.sample(payload)

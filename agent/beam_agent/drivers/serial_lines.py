"""Any serial device that prints text lines: a regular expression with named groups says
which parts of a line are the payload, so a new device needs a config entry, not code."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Optional

from beam_agent.drivers.base import Option, OptionError
from beam_agent.drivers.serial_port import SERIAL_OPTIONS, SerialDriver
from beam_agent.reading import Sample

TYPE_NAMES = ("int", "float", "str")
SENSOR_TYPE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def compile_pattern(text: str) -> re.Pattern[str]:
    """The `pattern` option as a compiled regex, or OptionError saying what is wrong with it."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise OptionError("pattern", f"is not a valid regular expression: {exc}") from None
    if not pattern.groupindex:
        raise OptionError("pattern", "needs at least one named group, e.g. (?P<value>[0-9.]+)")
    return pattern


def check_types(types: Mapping[str, Any], pattern: re.Pattern[str]) -> None:
    for group, type_name in types.items():
        if group not in pattern.groupindex:
            raise OptionError("types", f"{group!r} is not a named group of pattern")
        if type_name not in TYPE_NAMES:
            raise OptionError(
                "types", f"{group}: must be one of {', '.join(TYPE_NAMES)}, got {type_name!r}"
            )


def convert(group: str, text: Optional[str], type_name: Optional[str]) -> Any:
    """One captured group as a JSON value: its declared type, else a float if it is one.

    A group that did not take part in the match is null. ValueError if a declared int or
    float does not parse, or is not finite (JSON has no NaN).
    """
    if text is None:
        return None
    if type_name == "str":
        return text
    if type_name == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"group {group!r}: {text!r} is not an int") from None
    try:
        number = float(text)
    except ValueError:
        if type_name == "float":
            raise ValueError(f"group {group!r}: {text!r} is not a float") from None
        return text
    if math.isfinite(number):
        return number
    if type_name == "float":
        raise ValueError(f"group {group!r}: {text!r} is not a finite number")
    return text


class SerialLinesDriver(SerialDriver):
    type_name = "serial_lines"
    description = (
        "Any serial device that prints text lines: the named groups of `pattern` "
        "become the payload, one reading per matching line."
    )
    options = (
        *SERIAL_OPTIONS,
        Option(
            "pattern",
            str,
            help="Python regular expression with named groups, searched in "
            "each line, e.g. 'T=(?P<temperature_c>[-0-9.]+)'",
        ),
        Option(
            "types",
            dict,
            {},
            help="group name -> 'int', 'float' or 'str'; undeclared "
            "groups are floats when they parse, else strings",
        ),
        Option("sensor_type", str, "", help="the readings' sensor_type (default 'serial_lines')"),
    )

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        options = super().validate_options(raw)
        check_types(options["types"], compile_pattern(options["pattern"]))
        sensor_type = options["sensor_type"]
        if sensor_type and not SENSOR_TYPE_RE.fullmatch(sensor_type):
            raise OptionError(
                "sensor_type",
                f"must be 1 to 64 letters, digits, '.', '_' or '-', got {sensor_type!r}",
            )
        return options

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.pattern = compile_pattern(self.config["pattern"])
        self.types: dict[str, str] = dict(self.config["types"])
        self.sensor_type: str = self.config["sensor_type"] or self.type_name

    def parse_line(self, line: str) -> Sample:
        match = self.pattern.search(line)
        if match is None:
            raise ValueError("does not match pattern")
        payload = {
            group: convert(group, text, self.types.get(group))
            for group, text in match.groupdict().items()
        }
        return Sample(self.sensor_type, payload)

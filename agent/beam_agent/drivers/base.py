"""What every driver is: validated options in, samples out; the scheduler does the rest."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ClassVar, Optional

from beam_agent.reading import Sample, utc_now


class DriverError(Exception):
    """A sensor could not be read this time; the scheduler counts it, backs off and retries."""


class OptionError(ValueError):
    """An option in a [[sensor]] table is wrong; `key` names it so the message can point at it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


_REQUIRED: Any = object()

_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "a table",
}


@dataclass(frozen=True)
class Option:
    """One driver option, declared once: validation and `beam-agent drivers` both read it."""

    name: str
    kind: type
    default: Any = _REQUIRED
    help: str = ""
    choices: Optional[Sequence[Any]] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value: Any) -> Any:
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not is_kind(value, kind):
            raise OptionError(
                self.name, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(self.name, f"must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise OptionError(self.name, f"must be one of {allowed}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(self.name, f"must be at least {self.minimum}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise OptionError(self.name, f"must be at most {self.maximum}, got {value!r}")
        return value

    def describe(self) -> str:
        kind = self.kind.__name__
        default = "required" if self.required else f"default {self.default!r}"
        return f"{self.name} ({kind}, {default}): {self.help}".rstrip(": ")


def is_kind(value: Any, kind: type) -> bool:
    """isinstance, except that a TOML boolean is not an integer."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


Emit = Callable[[Sample], None]


class Driver:
    """Base class of all drivers.

    A polled driver implements `read()`; the scheduler calls it every `interval_ms`.
    A streaming driver sets `streaming = True` and implements `stream()`, which blocks,
    calls `emit` for each sample as it arrives and returns when `stop` is set; raising
    `DriverError` makes the scheduler reconnect after a back-off.
    Drivers never touch hardware in `__init__`: `check-config` constructs none, and the
    scheduler opens devices lazily so a missing device is an error to retry, not a crash.
    """

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[Sequence[Option]] = ()
    streaming: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.config = dict(options)

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check raw options against `options`: unknown keys, types, ranges; fill defaults.

        Subclasses that need cross-field checks call this first, then raise OptionError.
        """
        known = {option.name: option for option in cls.options}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise OptionError(unknown[0], f"unknown option for driver {cls.type_name!r}")
        validated: dict[str, Any] = {}
        for name, option in known.items():
            if name in raw:
                validated[name] = option.check(raw[name])
            elif option.required:
                raise OptionError(name, "is required")
            else:
                validated[name] = option.default
        return validated

    def sample(self, payload: dict[str, Any], timestamp: Optional[datetime] = None) -> Sample:
        return Sample(self.type_name, payload, timestamp or utc_now())

    def read(self) -> list[Sample]:
        raise DriverError(f"driver {self.type_name!r} is not a polled driver")

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        raise DriverError(f"driver {self.type_name!r} is not a streaming driver")

    def close(self) -> None:
        """Release devices and connections; called on shutdown and before a reconnect."""

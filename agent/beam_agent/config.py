"""config.toml: load it, check every key, and say exactly which key in which file is wrong."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # Raspberry Pi OS bullseye ships Python 3.9
    import tomli as tomllib

from beam_agent.drivers import Driver, DriverLoadError, Option, OptionError, resolve_driver
from beam_agent.queue import OVERFLOW_POLICIES

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SENSOR_KEYS = ("name", "type", "driver", "interval_ms", "timeout_ms", "max_rate_hz")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str


@dataclass(frozen=True)
class ConfigWarning:
    """A key that was taken, but not as written: check-config prints it, run logs it."""

    key: str
    message: str

    def line(self, path: Path) -> str:
        return f"{path}: {self.key}: warning: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file, each naming the file, the key and the fault."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}: {p.key}: {p.message}" for p in self.problems]


@dataclass(frozen=True)
class QueueConfig:
    max_readings: int = 1_000_000
    overflow: str = "drop_oldest"
    max_bytes: int = 0  # 0: no bound on the database's size
    min_free_bytes: int = 0  # 0: no bound on the disk space left free


@dataclass(frozen=True)
class PushConfig:
    batch_size: int = 500
    # 10 s, as Telegraf flushes: a fleet's receiver pays per request, so a reading a second
    # pushed one by one costs it ten times what ten in one push do (docs/receiver.md).
    interval_ms: int = 10_000
    timeout_s: float = 10.0


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = 30.0


@dataclass(frozen=True)
class SensorConfig:
    name: str
    sensor_type: str
    driver_class: type[Driver]
    options: dict[str, Any]
    interval_ms: int = 1000
    timeout_ms: int = 10_000
    max_rate_hz: float = 100.0

    def create_driver(self) -> Driver:
        return self.driver_class(self.options)


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    device_id: str
    api_url: str
    state_dir: Path
    device_token: Optional[str] = field(default=None, repr=False)
    device_token_file: Optional[Path] = None
    ca_file: Optional[Path] = None  # PEM bundle for an https api_url; None: default CAs
    role: str = "agent"
    tags: dict[str, str] = field(default_factory=dict)
    queue: QueueConfig = field(default_factory=QueueConfig)
    push: PushConfig = field(default_factory=PushConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    sensors: tuple[SensorConfig, ...] = ()
    warnings: tuple[ConfigWarning, ...] = ()

    def read_token(self) -> str:
        """The device token, re-read from its file on every call so a rotated token is used.

        The file wins over an inline `device_token`, as the contract says.
        """
        if self.device_token_file is not None:
            return self.device_token_file.read_text(encoding="utf-8").strip()
        return self.device_token or ""

    def sensor(self, name: str) -> SensorConfig:
        for sensor in self.sensors:
            if sensor.name == name:
                return sensor
        raise KeyError(name)


class _Checker:
    """Collects problems instead of stopping at the first, so one run lists them all."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def take(self, table: Mapping[str, Any], option: Option, prefix: str = "") -> Any:
        """The checked value of one key, or its default after recording what is wrong."""
        fallback = None if option.required else option.default
        if option.name not in table:
            if option.required:
                self.fail(f"{prefix}{option.name}", "is required")
            return fallback
        try:
            return option.check(table[option.name])
        except OptionError as exc:
            self.fail(f"{prefix}{exc.key}", exc.message)
            return fallback

    def unknown(self, table: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
        for key in sorted(set(table) - set(known)):
            self.fail(f"{prefix}{key}", "unknown key")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
            return {}
        return value


# Every key of config.toml, declared once: checked here, documented in docs/agent.md.
TOP_OPTIONS = (
    Option("device_id", str),
    Option("api_url", str),
    Option("device_token", str, None),
    Option("device_token_file", str, None),
    Option("ca_file", str, None),
    Option("state_dir", str, "/var/lib/beam-agent"),
    Option("role", str, "agent"),
    Option("tags", dict, {}),
)
TOP_TABLES = ("queue", "push", "telemetry", "sensor")
QUEUE_OPTIONS = (
    Option("max_readings", int, 1_000_000, minimum=1),
    Option("overflow", str, "drop_oldest", choices=OVERFLOW_POLICIES),
    Option("max_bytes", int, 0, minimum=0),
    Option("min_free_bytes", int, 0, minimum=0),
)
PUSH_OPTIONS = (
    Option("batch_size", int, 500, minimum=1),
    Option("interval_ms", int, PushConfig.interval_ms, minimum=10),
    Option("timeout_s", float, 10.0, minimum=0.1),
)
TELEMETRY_OPTIONS = (Option("interval_s", float, 30.0, minimum=1.0),)


def load_config(path: Path | str, check_files: bool = False) -> AgentConfig:
    """Read and check config.toml; raises ConfigError listing every problem found.

    `check_files` (check-config) also opens the files the config names: `ca_file` must hold
    a PEM certificate. `run` does not: a CA file that goes bad later stops deliveries (the
    push reports it as a TLS failure and keeps the readings), not the sensors.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [Problem("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [Problem("(file)", f"invalid TOML: {exc}")]) from exc
    return parse_config(data, path, check_files)


def ca_file_problem(path: Path) -> Optional[str]:
    """Why `path` cannot serve as the CA bundle an https receiver is verified against."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    import ssl  # only for an https receiver with a ca_file: an http agent never loads OpenSSL

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:  # as the push loads it
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"{path} holds no PEM certificate that can be loaded ({reason})"
    if not context.cert_store_stats()["x509"]:
        return f"{path} holds no PEM certificate"
    return None


# The receiver's endpoints; the agent appends them to api_url (push.py, runner.py).
RECEIVER_PATHS = "/api/readings, /api/telemetry, /api/nodes/register"


def receiver_base(api_url: str) -> str:
    """api_url without a path that reaches into the receiver's endpoints: a path from an
    `api` segment on (https://host/api/readings -> https://host) is the agent's to add. A
    path before it (a receiver served under /beam behind a proxy) is kept."""
    parts = urlsplit(api_url)
    segments = parts.path.split("/")
    if "api" in segments:
        segments = segments[: segments.index("api")]
    path = "/".join(segments).rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _check_api_url(api_url: str, check: _Checker, warnings: list[ConfigWarning]) -> str:
    """The base URL the agent will use. Refused: no http(s) URL, a query or fragment (an
    endpoint's path cannot follow them). A path into /api/... is cut off with a warning,
    not refused: the seed configs write the readings endpoint, and a node whose agent was
    upgraded under such a config must keep reading and delivering, not stop."""
    if not re.match(r"^https?://[^/\s]+", api_url):
        check.fail("api_url", f"must be an http:// or https:// URL, got {api_url!r}")
        return api_url
    parts = urlsplit(api_url)
    if parts.query or parts.fragment or api_url.endswith(("?", "#")):
        check.fail(
            "api_url",
            f"{api_url!r} has a query or fragment; api_url is the receiver's base URL "
            f"(scheme, host, port and an optional path prefix), e.g. "
            f"{urlunsplit((parts.scheme, parts.netloc, '', '', ''))!r}",
        )
        return api_url
    base = receiver_base(api_url).rstrip("/")
    if base != api_url.rstrip("/"):
        warnings.append(
            ConfigWarning(
                "api_url",
                f"{api_url!r} reaches into the receiver's endpoints ({RECEIVER_PATHS}), which "
                f"the agent appends itself: api_url is the receiver's base URL. Using "
                f"{base!r}; write api_url = {base!r}",
            )
        )
    return base


def _section(
    check: _Checker, data: Mapping[str, Any], name: str, options: tuple[Option, ...]
) -> dict[str, Any]:
    table = check.table(data, name) if name else data
    prefix = f"{name}." if name else ""
    if name:
        check.unknown(table, tuple(o.name for o in options), prefix)
    return {option.name: check.take(table, option, prefix) for option in options}


def parse_config(data: Mapping[str, Any], path: Path, check_files: bool = False) -> AgentConfig:
    check = _Checker()
    check.unknown(data, (*(o.name for o in TOP_OPTIONS), *TOP_TABLES), "")
    top = _section(check, data, "", TOP_OPTIONS)
    if top["device_id"] and not DEVICE_ID_PATTERN.match(top["device_id"]):
        check.fail(
            "device_id",
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    warnings: list[ConfigWarning] = []
    if top["api_url"]:
        top["api_url"] = _check_api_url(top["api_url"], check, warnings)
    url_refused = any(problem.key == "api_url" for problem in check.problems)
    if (
        top["api_url"]
        and not url_refused
        and top["ca_file"] is not None
        and not top["api_url"].startswith("https")
    ):
        check.fail(
            "ca_file",
            f"verifies an https:// receiver, but api_url is {top['api_url']!r}: "
            "use https:// in api_url, or remove ca_file",
        )
    # Relative paths are relative to the config file, never to wherever the agent started.
    ca_path = path.parent / top["ca_file"] if top["ca_file"] is not None else None
    if top["ca_file"] == "":
        check.fail("ca_file", "must be a path; leave it out to use the default CA bundle")
    elif ca_path is not None and check_files:
        problem = ca_file_problem(ca_path)
        if problem is not None:
            check.fail("ca_file", problem)
    if top["device_token"] is None and top["device_token_file"] is None:
        check.fail("device_token_file", "either device_token_file or device_token is required")
    if any(not isinstance(v, str) for v in top["tags"].values()):
        check.fail("tags", "values must be strings")
    queue = QueueConfig(**_section(check, data, "queue", QUEUE_OPTIONS))
    push = PushConfig(**_section(check, data, "push", PUSH_OPTIONS))
    telemetry = TelemetryConfig(**_section(check, data, "telemetry", TELEMETRY_OPTIONS))
    sensors = _parse_sensors(data.get("sensor", []), check)
    if check.problems:
        raise ConfigError(path, check.problems)

    token_path = path.parent / top["device_token_file"] if top["device_token_file"] else None
    return AgentConfig(
        path=path,
        device_id=top["device_id"],
        api_url=top["api_url"],
        device_token=top["device_token"],
        device_token_file=token_path,
        ca_file=ca_path,
        state_dir=path.parent / top["state_dir"],
        role=top["role"],
        tags=top["tags"],
        queue=queue,
        push=push,
        telemetry=telemetry,
        sensors=tuple(sensors),
        warnings=tuple(warnings),
    )


def _parse_sensors(raw: Any, check: _Checker) -> list[SensorConfig]:
    if not isinstance(raw, list):
        check.fail("sensor", "must be an array of tables ([[sensor]])")
        return []
    sensors: list[SensorConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        prefix = f"sensor[{index}]."
        if not isinstance(table, dict):
            check.fail(f"sensor[{index}]", "must be a table")
            continue
        name = check.take(table, Option("name", str), prefix)
        if name:
            prefix = f"sensor[{index}] ({name})."
            if name in seen:
                check.fail(f"{prefix}name", f"duplicate sensor name {name!r}")
            seen.add(name)
        sensor_type = check.take(table, Option("type", str), prefix)
        reference = check.take(table, Option("driver", str, None), prefix)
        interval_ms = check.take(table, Option("interval_ms", int, 1000, minimum=1), prefix)
        timeout_ms = check.take(
            table, Option("timeout_ms", int, max(10_000, interval_ms), minimum=1), prefix
        )
        max_rate_hz = check.take(
            table,
            Option("max_rate_hz", float, max(100.0, 10_000.0 / interval_ms), minimum=0.001),
            prefix,
        )
        if not sensor_type:
            continue
        try:
            driver_class = resolve_driver(sensor_type, reference)
        except DriverLoadError as exc:
            check.fail(f"{prefix}{'driver' if reference else 'type'}", str(exc))
            continue
        raw_options = {k: v for k, v in table.items() if k not in SENSOR_KEYS}
        try:
            options = driver_class.validate_options(raw_options)
        except OptionError as exc:
            check.fail(f"{prefix}{exc.key}", exc.message)
            continue
        sensors.append(
            SensorConfig(
                name=name,
                sensor_type=sensor_type,
                driver_class=driver_class,
                options=options,
                interval_ms=interval_ms,
                timeout_ms=timeout_ms,
                max_rate_hz=max_rate_hz,
            )
        )
    return sensors

"""The node itself as a sensor: CPU, load, memory, disks, temperatures, network, processes.

Everything comes from psutil. CPU percentages are computed from this driver's own
cpu_times() snapshots rather than psutil.cpu_percent(None), whose "since last call" state
is global to the process and would be reset by anyone else calling it (telemetry does).
The first read samples over a short window so its numbers are meaningful; later reads
cover the time since the previous read. Process CPU is kept the same way, per process,
and follows top's convention: 100 means one core fully busy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import psutil

from beam_agent.drivers.base import Driver, DriverError, Option, OptionError
from beam_agent.reading import Sample, finite

FIRST_READ_WINDOW_S = 0.25
"""How long the first read watches the CPU; later reads use the time since the last one."""

GROUPS = ("cpu", "memory", "disks", "temperatures", "network")


def _total_time(times: Any) -> float:
    # On Linux guest time is already counted in user and nice time (as psutil does).
    total = float(sum(times))
    return total - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _busy_time(times: Any) -> float:
    return _total_time(times) - float(times.idle) - float(getattr(times, "iowait", 0.0))


def busy_percent(before: Any, after: Any) -> float:
    """Share of CPU time spent busy between two cpu_times() snapshots, 0..100."""
    elapsed = _total_time(after) - _total_time(before)
    if elapsed <= 0:
        return 0.0
    busy = _busy_time(after) - _busy_time(before)
    return round(min(max(busy / elapsed * 100.0, 0.0), 100.0), 1)


def temperature_readings(sensors: Mapping[str, Sequence[Any]]) -> dict[str, Optional[float]]:
    """psutil.sensors_temperatures() as flat 'chip' or 'chip/label' -> °C.

    An unlabelled chip with one sensor (a Raspberry Pi's 'cpu_thermal') is just its name;
    repeated or empty labels get a 1-based index so no reading overwrites another.
    """
    readings: dict[str, Optional[float]] = {}
    for chip, entries in sensors.items():
        for index, entry in enumerate(entries, start=1):
            label = entry.label
            if not label and len(entries) == 1:
                key = chip
            else:
                key = f"{chip}/{label or index}"
                if key in readings:
                    key = f"{key}/{index}"
            readings[key] = finite(float(entry.current))
    return readings


def network_counters(
    counters: Mapping[str, Any], interfaces: Sequence[str]
) -> dict[str, dict[str, int]]:
    """psutil.net_io_counters(pernic=True) as interface -> in/out counters (all if none named)."""
    selected = interfaces or sorted(counters)
    return {
        name: {
            "bytes_in": counters[name].bytes_recv,
            "bytes_out": counters[name].bytes_sent,
            "packets_in": counters[name].packets_recv,
            "packets_out": counters[name].packets_sent,
            "errors_in": counters[name].errin,
            "errors_out": counters[name].errout,
            "drops_in": counters[name].dropin,
            "drops_out": counters[name].dropout,
        }
        for name in selected
        if name in counters
    }


def disk_usage(mounts: Iterable[str]) -> dict[str, Optional[dict[str, Any]]]:
    """Usage per configured mount; None for one that is not there (an unplugged USB disk)."""
    usage: dict[str, Optional[dict[str, Any]]] = {}
    for mount in mounts:
        try:
            du = psutil.disk_usage(mount)
        except OSError:
            usage[mount] = None
            continue
        usage[mount] = {
            "total_bytes": du.total,
            "used_bytes": du.used,
            "free_bytes": du.free,
            "percent": du.percent,
        }
    return usage


class SystemDriver(Driver):
    type_name = "system"
    description = (
        "This node's CPU, load, memory, disk usage, temperatures, network "
        "counters and busiest processes (psutil)."
    )
    options = (
        Option("mounts", list, ["/"], help="mount points whose disk usage is reported"),
        Option(
            "top_processes",
            int,
            5,
            minimum=0,
            maximum=100,
            help="report this many processes with the most CPU since the last read "
            "(a scan of /proc per read); 0 disables",
        ),
        Option(
            "interfaces",
            list,
            [],
            help='network interfaces to report, e.g. ["eth0", "wlan0"]; empty for all',
        ),
        Option("cpu", bool, True, help="report CPU percent, per core, frequency and load"),
        Option("memory", bool, True, help="report memory and swap"),
        Option("disks", bool, True, help="report disk usage of `mounts`"),
        Option(
            "temperatures", bool, True, help="report temperatures where the kernel exposes them"
        ),
        Option("network", bool, True, help="report network counters per interface"),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.mounts: list[str] = list(self.config["mounts"])
        self.interfaces: list[str] = list(self.config["interfaces"])
        self.top_processes: int = self.config["top_processes"]
        self.groups = {group for group in GROUPS if self.config[group]}
        self.last_total: Any = None
        self.last_per_core: list[Any] = []
        self.processes: dict[int, psutil.Process] = {}

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        validated = super().validate_options(raw)
        for key in ("mounts", "interfaces"):
            for index, item in enumerate(validated[key]):
                if not isinstance(item, str) or not item:
                    raise OptionError(key, f"item {index} must be a non-empty string, got {item!r}")
        for index, mount in enumerate(validated["mounts"]):
            if not mount.startswith("/"):
                raise OptionError("mounts", f"item {index} must be an absolute path, got {mount!r}")
        if not any(validated[group] for group in GROUPS) and validated["top_processes"] == 0:
            raise OptionError("top_processes", "is 0 and every group is off: nothing to report")
        return validated

    def read(self) -> list[Sample]:
        try:
            payload = self._collect()
        except (OSError, psutil.Error) as exc:
            raise DriverError(f"cannot read system statistics: {exc}") from None
        return [self.sample(payload)]

    def _collect(self) -> dict[str, Any]:
        wants_cpu = "cpu" in self.groups or self.top_processes > 0
        if wants_cpu and self.last_total is None:
            self._prime()
            time.sleep(FIRST_READ_WINDOW_S)
        payload: dict[str, Any] = {}
        if "cpu" in self.groups:
            payload.update(self._cpu())
        if self.top_processes > 0:
            payload["top_processes"] = self._top_processes()
        if "memory" in self.groups:
            payload.update(self._memory())
        if "disks" in self.groups:
            payload["disks"] = disk_usage(self.mounts)
        if "temperatures" in self.groups:
            payload["temperatures_c"] = self._temperatures()
        if "network" in self.groups:
            payload["network"] = network_counters(
                psutil.net_io_counters(pernic=True), self.interfaces
            )
        return payload

    def _prime(self) -> None:
        """Take the 'before' snapshots the first read measures against."""
        self.last_total = psutil.cpu_times()
        self.last_per_core = psutil.cpu_times(percpu=True)
        if self.top_processes > 0:
            self._top_processes()

    def _cpu(self) -> dict[str, Any]:
        total, per_core = psutil.cpu_times(), psutil.cpu_times(percpu=True)
        if len(self.last_per_core) == len(per_core):
            cores = [busy_percent(a, b) for a, b in zip(self.last_per_core, per_core)]
        else:  # a core went on- or offline since the last read: no per-core delta this time
            cores = [0.0] * len(per_core)
        cpu: dict[str, Any] = {
            "cpu_percent": busy_percent(self.last_total, total),
            "cpu_percent_per_core": cores,
        }
        self.last_total, self.last_per_core = total, per_core
        frequency = _cpu_frequency()
        cpu["cpu_freq_mhz"] = None if frequency is None else round(frequency, 1)
        load_1, load_5, load_15 = psutil.getloadavg()
        cpu.update(load_1=round(load_1, 2), load_5=round(load_5, 2), load_15=round(load_15, 2))
        return cpu

    def _top_processes(self) -> list[dict[str, Any]]:
        """The busiest processes since the last call.

        Each process's CPU share is the delta since this driver last saw it, so the driver
        keeps its own Process objects: psutil.process_iter() hands out shared ones whose
        "since last call" state any other caller (another system sensor) would reset.
        """
        seen: dict[int, psutil.Process] = {}
        usage: list[tuple[float, float, dict[str, Any]]] = []
        for pid in psutil.pids():
            try:
                process = self.processes.get(pid)
                if process is None or not process.is_running():  # new, or its pid was reused
                    process = psutil.Process(pid)
                with process.oneshot():
                    cpu, memory = process.cpu_percent(None), process.memory_percent()
                    entry = {
                        "name": process.name(),
                        "pid": pid,
                        "cpu_percent": round(cpu, 1),
                        "memory_percent": round(memory, 2),
                    }
            except psutil.Error:  # it exited, or is not ours to inspect
                continue
            seen[pid] = process
            usage.append((cpu, memory, entry))
        self.processes = seen
        usage.sort(key=lambda item: (item[0], item[1]), reverse=True)  # memory breaks ties
        return [entry for _, _, entry in usage[: self.top_processes]]

    def _memory(self) -> dict[str, Any]:
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        return {
            "memory_total_bytes": memory.total,
            "memory_available_bytes": memory.available,
            "memory_used_bytes": memory.used,
            "memory_percent": memory.percent,
            "swap_total_bytes": swap.total,
            "swap_used_bytes": swap.used,
            "swap_percent": swap.percent,
        }

    def _temperatures(self) -> dict[str, Optional[float]]:
        sensors = getattr(psutil, "sensors_temperatures", None)
        if sensors is None:  # not on this platform
            return {}
        return temperature_readings(sensors())


def _cpu_frequency() -> Optional[float]:
    try:
        frequency = psutil.cpu_freq()
    except (OSError, NotImplementedError):  # some ARM kernels have no cpufreq at all
        return None
    if frequency is None or not frequency.current:
        return None
    return finite(float(frequency.current))

"""The dashboard in a real browser: headless Chromium against a real `beam-receiver serve`.

Readings and heartbeats reach the receiver over HTTP with device tokens; Chromium logs in
through the form, finds the fleet table, and waits for uPlot to draw the node's charts.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: the
browser reads commands on fd 3 and writes answers on fd 4, each a JSON text ended by a NUL
byte), so there is no debugging port to race for and no client package to install.
Set BEAM_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the README's screenshot of a
node's page, BEAM_DASHBOARD_FLEET_SCREENSHOT=docs/dashboard-fleet.png for the fleet page and
BEAM_DASHBOARD_COLLECTD_SCREENSHOT=docs/dashboard-collectd.png for a collectd node's page.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import re
import select
import shutil
import signal
import struct
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from beam_receiver.storage.base import COLLECTD_READ_SPREAD_MS

from tests.support.constants import PASSWORD, USER
from tests.support.readings import rfc3339
from tests.support.receiver import ReceiverProcess, configure_receiver
from tests.support.waiting import poll_until

pytestmark = pytest.mark.slow

DEVICE_TOKENS = {
    "beamrider-0001": "token-0001",
    "beamrider-0002": "token-0002",
    "stray-0009": "token-0009",
}
READINGS_PER_SENSOR = 50  # one a minute over the last 50 minutes
CLIMATE_SILENT_MINUTES = range(20, 28)  # the climate sensor misses 8 of them: a gap
GEIGER_FIELDS = ["cpm", "cps", "usv_per_hr"]  # numeric; "mode" is text and gets no chart
CLIMATE_FIELDS = ["humidity_pct", "temperature_c"]
# The node's own gauges: memory in use moves (a chart in MiB), the total and the swap in use
# hold one value (the facts panel, not a chart).
SYSTEM_FIELDS = ["memory_used_bytes"]
STEADY_FIELDS = {"system.memory_total_bytes": "8 GiB", "system.swap_used_bytes": "0 B"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
STARTUP_TIMEOUT_S = 90.0
PAGE_TIMEOUT_S = 60.0


# -- the receiver -------------------------------------------------------------------------


def post(receiver: ReceiverProcess, path: str, body: Any, token: str) -> Any:
    """One JSON POST; returns the decoded answer, raises AssertionError on a non-2xx."""
    response = receiver.post(path, body, token)
    assert response.ok, f"POST {path}: {response.status_code} {response.text[:500]}"
    return response.json()


def report_fleet(receiver: ReceiverProcess) -> None:
    """What two nodes send: heartbeats, a registration, and 50 minutes of readings."""
    now = datetime.now(timezone.utc)
    node, token = "beamrider-0001", DEVICE_TOKENS["beamrider-0001"]
    post(
        receiver,
        "/api/nodes/register",
        {
            "node_id": node,
            "role": "geiger",
            "hostname": "beamrider-0001",
            "ip_address": "127.0.0.1",
            "software_version": "0.1.0",
            "tags": {},
        },
        token,
    )
    heartbeat = {
        "node_id": node,
        "timestamp": rfc3339(now),
        "software_version": "0.1.0",
        "uptime_seconds": 3600,
        "metrics": {"queue_depth": 2},
        "protocol_version": 1,
    }
    post(receiver, "/api/telemetry", heartbeat, token)
    readings = []
    for minute in range(READINGS_PER_SENSOR):
        stamp = rfc3339(now - timedelta(minutes=READINGS_PER_SENSOR - minute, seconds=-1))
        cpm = 34 + round(6 * math.sin(minute / 5)) + (minute * 37) % 7 - 3
        readings.append(
            {
                "device_id": node,
                "sensor": "geiger",
                "sensor_type": "mightyohm",
                "payload": {
                    "cps": round(cpm / 60, 3),
                    "cpm": cpm,
                    "usv_per_hr": cpm / 175,
                    "mode": "SLOW",
                },
                "timestamp": stamp,
                "seq": 3 * minute + 1,
            }
        )
        readings.append(
            {
                "device_id": node,
                "sensor": "system",
                "sensor_type": "system",
                "payload": {
                    "memory_used_bytes": (300 + (minute * 7) % 90) * 2**20,
                    "memory_total_bytes": 8 * 2**30,
                    "swap_used_bytes": 0,
                },
                "timestamp": stamp,
                "seq": 3 * minute + 3,
            }
        )
        if minute in CLIMATE_SILENT_MINUTES:
            continue
        readings.append(
            {
                "device_id": node,
                "sensor": "climate",
                "sensor_type": "bme280",
                "payload": {"temperature_c": 18 + minute / 10, "humidity_pct": 60 - minute / 5},
                "timestamp": stamp,
                "seq": 3 * minute + 2,
            }
        )
    answer = post(receiver, "/api/readings", {"readings": readings}, token)
    assert answer == {"accepted": len(readings), "duplicates": 0}
    stray = {"node_id": "stray-0009", "timestamp": rfc3339(now), "role": "geiger"}
    post(receiver, "/api/telemetry", stray, DEVICE_TOKENS["stray-0009"])


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A real `beam-receiver serve` (gunicorn, two workers) on a free loopback port."""
    receiver = configure_receiver(
        tmp_path_factory.mktemp("receiver"),
        devices=DEVICE_TOKENS,
        operators={},
        users={USER: PASSWORD},
        expected_nodes='[nodes."beamrider-0001"]\nrole = "geiger"\n'
        'tags = {site = "roof", rack = "A"}\n[nodes."beamrider-0002"]\nrole = "weather"\n',
        workers=2,
    )
    try:
        receiver.start(STARTUP_TIMEOUT_S)
        report_fleet(receiver)
        yield receiver
    finally:
        receiver.stop(60)


@pytest.fixture(scope="module")
def receiver_url(receiver: ReceiverProcess) -> str:
    return receiver.url


# -- Chromium over the DevTools protocol --------------------------------------------------


class DevToolsError(RuntimeError):
    """A DevTools command was refused (e.g. evaluating in a page that is navigating)."""


class BrowserGone(RuntimeError):
    """Chromium exited or stopped answering."""


def find_chromium() -> str:
    for name in (os.environ.get("BEAM_CHROMIUM", ""), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    pytest.fail(
        "Chromium is not installed, so the dashboard's browser test cannot run. Run `make test`"
        " (it installs Debian's chromium package) or `apt-get install -y chromium`."
    )


class Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        commands_read, commands_write = os.pipe()
        answers_read, answers_write = os.pipe()
        # Lift the child's ends above fd 4, so that moving them to 3 and 4 cannot collide.
        child_in = fcntl.fcntl(commands_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(answers_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(commands_read)
        os.close(answers_write)
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        argv = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        try:
            self.pid = os.posix_spawn(
                executable,
                argv,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null_fd, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    (os.POSIX_SPAWN_DUP2, child_in, 3),
                    (os.POSIX_SPAWN_DUP2, child_out, 4),
                ],
                setpgroup=0,  # its own process group, so its renderers can be stopped with it
            )
        finally:
            for fd in (child_in, child_out, log_fd, null_fd):
                os.close(fd)
        self.log = log
        self.commands = commands_write
        self.answers = answers_read
        self.pending = b""
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    def receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserGone(f"Chromium did not answer in time; its log:\n{self.log_tail()}")
            if select.select([self.answers], [], [], remaining)[0]:
                chunk = os.read(self.answers, 1 << 20)
                if not chunk:
                    raise BrowserGone(f"Chromium exited; its log:\n{self.log_tail()}")
                self.pending += chunk
        message, _, self.pending = self.pending.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def send(
        self,
        method: str,
        params: Optional[dict[str, Any]] = None,
        session: Optional[str] = None,
        timeout: float = PAGE_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self.last_id += 1
        command: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        data = json.dumps(command).encode() + b"\0"
        while data:
            data = data[os.write(self.commands, data) :]
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline)
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        with contextlib.suppress(DevToolsError, BrowserGone, OSError):
            self.send("Browser.close", timeout=10)
        deadline = time.monotonic() + 20
        while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.killpg(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.1)
        os.close(self.commands)
        os.close(self.answers)


class Tab:
    """A page in a fresh browser context (its own cookies), attached for commands."""

    def __init__(self, browser: Chromium, width: int, height: int, mobile: bool = False) -> None:
        self.browser = browser
        context = browser.send("Target.createBrowserContext")["browserContextId"]
        target = browser.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context}
        )
        attached = browser.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session: str = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.resize(width, height, mobile)

    def send(self, method: str, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def resize(self, width: int, height: int, mobile: bool = False) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.send("Emulation.setDeviceMetricsOverride", metrics)

    def go(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise DevToolsError(f"{expression[:80]!r} threw {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = PAGE_TIMEOUT_S) -> Any:
        """Poll until the expression is truthy; a page mid-navigation is simply asked again."""
        errors = [""]

        def value() -> Any:
            try:
                return self.evaluate(expression)
            except DevToolsError as exc:
                errors.append(str(exc))
                return None

        found = poll_until(value, timeout)
        if found:
            return found
        url = self.evaluate("location.href")
        raise AssertionError(f"timed out at {url} waiting for {expression} {errors[-1]}")

    def screenshot(self, height: Optional[int] = None) -> bytes:
        """The whole page, or its top `height` pixels."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if height:
            width = self.evaluate("document.documentElement.clientWidth")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def problems(self) -> list[str]:
        """Uncaught exceptions and console or network errors, CSP violations included."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif (
                event["method"] == "Log.entryAdded" and event["params"]["entry"]["level"] == "error"
            ):
                entry = event["params"]["entry"]
                found.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
            elif (
                event["method"] == "Runtime.consoleAPICalled" and event["params"]["type"] == "error"
            ):
                found.append(json.dumps(event["params"]["args"])[:500])
        return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    executable = find_chromium()
    directory = tmp_path_factory.mktemp("chromium")
    chromium = Chromium(executable, directory / "profile", directory / "chromium.log")
    try:
        chromium.send("Browser.getVersion", timeout=STARTUP_TIMEOUT_S)
        yield chromium
    finally:
        chromium.close()


def log_in(tab: Tab, base_url: str) -> None:
    """Through the login form, as a person would: the redirect, the fields, the button."""
    tab.go(base_url + "/")
    tab.wait_for(
        "location.pathname === '/login' && document.readyState === 'complete'"
        " && !!document.querySelector('input[name=csrf_token]')"
    )
    tab.evaluate(
        "(() => { const form = document.querySelector('main form');"
        " form.username.value = 'admin';"
        f" form.password.value = {json.dumps(PASSWORD)};"
        " form.querySelector('button[type=submit]').click(); return true; })()"
    )
    tab.wait_for(
        "location.pathname === '/' && document.readyState === 'complete'"
        " && !!document.getElementById('fleet-table')"
    )


FLEET_ROWS = """Array.from(document.querySelectorAll('#fleet-table tbody tr')).map(row => [
  row.dataset.nodeId, row.dataset.status, row.querySelector('.status').textContent.trim()])"""

CHARTS_READY = """(() => { const s = document.getElementById('charts');
  return s && s.dataset.state === 'ready' && s.dataset.range === '%s'; })()"""

# Per chart: what the page says it drew, the canvas size, and how many canvas pixels carry
# the average line's colour (#1f5fbf): proof that a line was really painted.
DRAWN_CHARTS = """Array.from(document.querySelectorAll('#chart-grid .chart')).map(box => {
  const canvas = box.querySelector('canvas');
  let linePixels = 0;
  if (canvas) {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4) {
      if (Math.abs(pixels[i] - 31) < 40 && Math.abs(pixels[i + 1] - 95) < 40
          && Math.abs(pixels[i + 2] - 191) < 40 && pixels[i + 3] > 128) { linePixels++; }
    }
  }
  const rect = canvas ? canvas.getBoundingClientRect() : {width: 0, height: 0};
  return {name: box.dataset.sensor + '.' + box.dataset.field, state: box.dataset.state,
          points: Number(box.dataset.points), width: rect.width, height: rect.height,
          linePixels: linePixels, unit: box.dataset.unit, yTicks: box.dataset.yTicks,
          xTicks: box.dataset.xTicks, yLabelWidth: Number(box.dataset.yLabelWidth),
          yAxisSize: Number(box.dataset.yAxisSize)};
})"""

FACTS = """Object.fromEntries(Array.from(document.querySelectorAll('#facts-list .fact')).map(
  fact => [fact.dataset.sensor + '.' + fact.dataset.field,
           fact.querySelector('dd').firstChild.textContent.trim()]))"""

HISTORY_READY = """(() => { const h = document.getElementById('history');
  return h && h.dataset.state === 'ready'; })()"""

ISO_LOCAL = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_login_fleet_table_and_drawn_charts(
    browser: Chromium, receiver_url: str, tmp_path: Path
) -> None:
    tab = Tab(browser, 1100, 900)
    log_in(tab, receiver_url)

    rows = tab.evaluate(FLEET_ROWS)
    assert rows == [
        ["beamrider-0001", "online", "Online"],
        ["beamrider-0002", "offline", "Offline"],
        ["stray-0009", "unexpected", "Unexpected"],
    ]

    tab.evaluate("document.querySelector('a[href=\"/nodes/beamrider-0001\"]').click()")
    tab.wait_for(CHARTS_READY % "24h")
    assert tab.evaluate("document.querySelector('h1').textContent").startswith("beamrider-0001")
    assert tab.evaluate("document.getElementById('charts').dataset.charts") == "6"
    assert tab.evaluate("document.getElementById('charts').dataset.facts") == "2"

    # Switch to the last hour: one-minute buckets, so each chart has one point per reading.
    tab.evaluate("document.querySelector('.ranges a[data-range=\"1h\"]').click()")
    tab.wait_for(CHARTS_READY % "1h")
    assert tab.evaluate("location.search") == "?range=1h"
    charts = tab.evaluate(DRAWN_CHARTS)
    expected_names = (
        [f"climate.{f}" for f in CLIMATE_FIELDS]
        + [f"geiger.{f}" for f in GEIGER_FIELDS]
        + [f"system.{f}" for f in SYSTEM_FIELDS]
    )
    assert [chart["name"] for chart in charts] == expected_names
    climate_points = READINGS_PER_SENSOR - len(CLIMATE_SILENT_MINUTES)
    by_name = {chart["name"]: chart for chart in charts}
    # Axis labels carry the field's unit, bytes scaled to one binary unit for the axis,
    # and each label fits the room its axis was given (a fixed 60 px cut "000,000").
    units = {
        "system.memory_used_bytes": "MiB",
        "climate.temperature_c": "°C",
        "climate.humidity_pct": "%",
        "geiger.usv_per_hr": "µSv/h",
    }
    for name, unit in units.items():
        ticks = by_name[name]["yTicks"].split(" | ")
        assert len(ticks) >= 2 and all(tick.endswith(unit) for tick in ticks), (name, ticks)
    assert "," not in by_name["system.memory_used_bytes"]["yTicks"]
    for chart in charts:
        assert 0 < chart["yLabelWidth"] < chart["yAxisSize"] - 10, chart
        # The time axis reads HH:MM in the viewer's zone, with an ISO date where it changes.
        assert re.search(r"\d{4}-\d\d-\d\d", chart["xTicks"]), chart
        ticks = chart["xTicks"].split(" | ")
        assert all(re.match(r"\d\d:\d\d|\d{4}-\d\d-\d\d$", tick) for tick in ticks), ticks
    # Fields that held one value over the range are facts, not charts.
    facts = tab.evaluate(FACTS)
    assert facts == STEADY_FIELDS and list(facts) == sorted(STEADY_FIELDS)
    assert not tab.evaluate("document.getElementById('facts').hidden")
    # The legend, under the pointer, shows values with units and dates as ISO 8601.
    assert tab.evaluate("beamFormat.valueText('bytes', 1536)") == "1.50 KiB"
    assert tab.evaluate("beamFormat.valueText(beamFormat.unitOf('cpu_freq_mhz'), 1500)") == (
        "1.50 GHz"
    )
    assert re.match(ISO_LOCAL, tab.evaluate("beamFormat.isoLocal(1764000000)"))
    # The heartbeat history: the one heartbeat sent, drawn as a strip over the range.
    tab.wait_for(HISTORY_READY)
    history = tab.evaluate("Object.assign({}, document.getElementById('history').dataset)")
    assert history["heartbeats"] == "1" and int(history["segments"]) >= 1, history
    # "Last seen" counts on by itself.
    last_seen = "document.querySelector('#node-details time').textContent"
    first = tab.evaluate(last_seen)
    tab.wait_for(f"{last_seen} !== {json.dumps(first)}", timeout=10)
    statuses = tab.evaluate(
        "Array.from(document.querySelectorAll('#history-strip .history-part'))"
        ".map(part => part.dataset.status)"
    )
    assert statuses[-1] == "online", statuses
    for chart in charts:
        assert chart["state"] == "drawn", chart
        expected_points = (
            climate_points if chart["name"].startswith("climate.") else READINGS_PER_SENSOR
        )
        assert chart["points"] == expected_points, chart
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["linePixels"] > 50, chart
    total = climate_points * len(CLIMATE_FIELDS) + READINGS_PER_SENSOR * (
        len(GEIGER_FIELDS) + len(SYSTEM_FIELDS) + len(STEADY_FIELDS)
    )
    assert tab.evaluate("document.getElementById('charts').dataset.points") == str(total)
    assert tab.problems() == []

    screenshot = tab.screenshot()
    assert png_size(screenshot)[0] == 1100
    (tmp_path / "dashboard.png").write_bytes(screenshot)
    destination = os.environ.get("BEAM_DASHBOARD_SCREENSHOT")
    if destination:
        Path(destination).write_bytes(screenshot)


def test_pages_fit_a_phone_screen(browser: Chromium, receiver_url: str) -> None:
    tab = Tab(browser, 390, 844, mobile=True)
    log_in(tab, receiver_url)
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    assert tab.evaluate("window.innerWidth") == 390
    assert tab.evaluate(fits)
    # On a phone each node is a card: the table's header row is hidden, labels show instead.
    assert (
        tab.evaluate("getComputedStyle(document.querySelector('#fleet-table thead')).display")
        == "none"
    )
    tab.go(receiver_url + "/nodes/beamrider-0001?range=1h")
    tab.wait_for(CHARTS_READY % "1h")
    assert tab.evaluate(fits)
    widths = tab.evaluate(
        "Array.from(document.querySelectorAll('#chart-grid canvas'))"
        ".map(c => c.getBoundingClientRect().right)"
    )
    assert len(widths) == len(GEIGER_FIELDS) + len(CLIMATE_FIELDS) + len(SYSTEM_FIELDS)
    assert all(0 < right <= 390 for right in widths), widths
    # A node that never sent a reading says so instead of drawing empty charts.
    tab.go(receiver_url + "/nodes/beamrider-0002")
    tab.wait_for(CHARTS_READY % "24h")
    assert tab.evaluate("document.getElementById('charts').dataset.charts") == "0"
    assert "no readings" in tab.evaluate("document.getElementById('charts-message').textContent")
    assert tab.problems() == []


VISIBLE_ROWS = """Array.from(document.querySelectorAll('#fleet-table tbody tr'))
  .filter(row => !row.hidden && row.offsetParent !== null).map(row => row.dataset.nodeId)"""

CHOOSE = """(() => { const select = document.getElementById('filter-%s');
  select.value = '%s'; select.dispatchEvent(new Event('change')); return true; })()"""


def test_fleet_filters_and_live_refresh(
    browser: Chromium, receiver: ReceiverProcess, tmp_path: Path
) -> None:
    tab = Tab(browser, 1100, 700)
    log_in(tab, receiver.url)
    tab.go(receiver.url + "/?refresh=2")
    tab.wait_for("document.getElementById('fleet-filters').classList.contains('filters-live')")
    all_nodes = ["beamrider-0001", "beamrider-0002", "stray-0009"]
    assert tab.evaluate(VISIBLE_ROWS) == all_nodes
    # Tags show in the node's cell; each status is offered with its count.
    assert tab.evaluate(
        "Array.from(document.querySelectorAll('tr[data-node-id=\"beamrider-0001\"] .tag'))"
        ".map(tag => tag.textContent)"
    ) == ["rack=A", "site=roof"]
    statuses = tab.evaluate(
        "Array.from(document.getElementById('filter-status').options).map(o => o.textContent)"
    )
    assert statuses == ["All", "Online (1)", "Degraded (0)", "Offline (1)", "Unexpected (1)"]

    # A site filter: one row left, the count says so, the URL keeps the choice.
    tab.evaluate(CHOOSE % ("site", "roof"))
    assert tab.evaluate(VISIBLE_ROWS) == ["beamrider-0001"]
    assert tab.evaluate("document.getElementById('fleet-shown').textContent") == "1 of 3 shown"
    assert "site=roof" in tab.evaluate("location.search")
    statuses = tab.evaluate(
        "Array.from(document.getElementById('filter-status').options).map(o => o.dataset.count)"
    )
    assert statuses == [None, "1", "0", "0", "0"]  # counts within the chosen site
    tab.evaluate(CHOOSE % ("role", "weather"))
    assert tab.evaluate(VISIBLE_ROWS) == []
    tab.evaluate(CHOOSE % ("site", ""))
    tab.evaluate(CHOOSE % ("role", ""))
    tab.evaluate(CHOOSE % ("status", "offline"))
    assert tab.evaluate(VISIBLE_ROWS) == ["beamrider-0002"]
    tab.evaluate(CHOOSE % ("status", ""))
    assert tab.evaluate(VISIBLE_ROWS) == all_nodes

    # Live: "… s ago" counts on each second, and a node coming online shows without a reload.
    last_seen = "document.querySelector('tr[data-node-id=\"beamrider-0001\"] time').textContent"
    first = tab.evaluate(last_seen)
    tab.wait_for(f"{last_seen} !== {json.dumps(first)}", timeout=10)
    assert re.fullmatch(r"\d+ (s|min) ago", tab.evaluate(last_seen))
    tab.evaluate("window.sameDocument = true")
    heartbeat = {"node_id": "beamrider-0002", "timestamp": rfc3339(datetime.now(timezone.utc))}
    post(receiver, "/api/telemetry", heartbeat, DEVICE_TOKENS["beamrider-0002"])
    tab.wait_for(
        "document.querySelector('tr[data-node-id=\"beamrider-0002\"]').dataset.status === 'online'",
        timeout=20,
    )
    assert tab.evaluate("window.sameDocument") is True
    assert int(tab.evaluate("document.getElementById('fleet-filters').dataset.refreshed")) >= 1
    assert "2 online" in tab.evaluate("document.getElementById('fleet-summary').textContent")

    # A rollout rolled a node back: the last rollout's line and the node's Version cell show
    # it on the next poll, still without a reload.
    assert tab.evaluate("document.getElementById('fleet-rollout')") is None
    release = {
        "active": "1.1.0",
        "previous": "1.0.0",
        "changed_at": "2026-12-04T09:31:00Z",
        "changed_by": "ops@laptop",
        "rolled_back_from": "1.2.0",
        "rollout": "20261204T093000Z-agent-1.2.0",
    }
    heartbeat = {
        "node_id": "beamrider-0002",
        "timestamp": rfc3339(datetime.now(timezone.utc)),
        "software_version": "1.1.0",
        "metrics": {"release": release},
    }
    post(receiver, "/api/telemetry", heartbeat, DEVICE_TOKENS["beamrider-0002"])
    tab.wait_for("document.getElementById('fleet-rollout') !== null", timeout=20)
    rollout = tab.evaluate("document.getElementById('fleet-rollout').textContent")
    assert "Last rollout: agent 1.2.0" in rollout and "1 rolled back: beamrider-0002" in rollout
    started = tab.evaluate("document.querySelector('#fleet-rollout time').textContent")
    assert re.fullmatch(r"2026-12-0[345] \d\d:\d\d(:\d\d)? \S+", started), started  # viewer's zone
    version = "document.querySelector('tr[data-node-id=\"beamrider-0002\"] td[data-label=Version]')"
    assert "rolled back from 1.2.0" in tab.evaluate(f"{version}.textContent")
    assert tab.evaluate("window.sameDocument") is True
    assert tab.problems() == []

    screenshot = tab.screenshot()
    (tmp_path / "dashboard-fleet.png").write_bytes(screenshot)
    destination = os.environ.get("BEAM_DASHBOARD_FLEET_SCREENSHOT")
    if destination:
        Path(destination).write_bytes(screenshot)


# -- a node that sends only collectd ------------------------------------------------------

COLLECTD_NODE = "collectd-0005"
COLLECTD_SAMPLES = Path(__file__).parent / "collectd_samples"
COLLECTD_MINUTES = 30  # one copy of the samples a minute over the last half hour

FACT_STATES = """Object.fromEntries(Array.from(document.querySelectorAll('#facts-list .fact')).map(
  fact => [fact.dataset.sensor + '.' + fact.dataset.field, fact.dataset.state]))"""


def scaled(value: Optional[float], scale: float) -> Optional[float]:
    """A collectd value times scale; an integer stays one, a null (NaN) stays null."""
    if value is None:
        return None
    return round(value * scale) if isinstance(value, int) else value * scale


def collectd_bodies(now_s: float) -> list[list[dict[str, Any]]]:
    """What collectd on COLLECTD_NODE posts: the captured write_http bodies (cpu, memory,
    load, df, disk, interface, swap), once a minute, re-timed to the last half hour (their
    spacing within a capture kept) and every non-zero value scaled by 0.8 to 1 from one
    minute to the next, so that what moved in the capture moves on the charts too."""
    samples = [
        item
        for path in sorted(COLLECTD_SAMPLES.glob("*.json"))
        for item in json.loads(path.read_text())
    ]
    first = min(item["time"] for item in samples)
    bodies = []
    for minute in range(COLLECTD_MINUTES):
        start = now_s - (COLLECTD_MINUTES - minute) * 60
        scale = 0.9 + 0.1 * math.sin(minute / 3)
        body = []
        for item in samples:
            values = [scaled(value, scale) for value in item["values"]]
            time_s = round(start + item["time"] - first, 3)
            body.append(dict(item, host=COLLECTD_NODE, time=time_s, values=values))
        bodies.append(body)
    return bodies


def collectd_page(bodies: list[list[dict[str, Any]]]) -> tuple[list[str], dict[str, str]]:
    """What the node page should show, worked out here the way the page is meant to: every
    value list of a plugin instance's newest read (stamped up to COLLECTD_READ_SPREAD_MS
    before the newest) gives "type[-type_instance].dsname" fields; a field whose values
    moved is a chart, one that held a value (zeros here) or had only nulls (collectd's NaN)
    is a fact, "steady" or "empty"."""
    items = [item for body in bodies for item in body]

    def sensor(item: dict[str, Any]) -> str:
        return "-".join(part for part in (item["plugin"], item["plugin_instance"]) if part)

    def key(item: dict[str, Any]) -> str:
        return "-".join(part for part in (item["type"], item["type_instance"]) if part)

    newest: dict[str, int] = {}
    for item in items:
        newest[sensor(item)] = max(newest.get(sensor(item), 0), round(item["time"] * 1000))
    values: dict[tuple[str, str], list[Any]] = {}
    for item in items:
        for dsname, value in zip(item["dsnames"], item["values"]):
            values.setdefault((sensor(item), f"{key(item)}.{dsname}"), []).append(value)
    shown = {
        (sensor(item), f"{key(item)}.{dsname}")
        for item in items
        if round(item["time"] * 1000) >= newest[sensor(item)] - COLLECTD_READ_SPREAD_MS
        for dsname in item["dsnames"]
    }
    charts, facts = [], {}
    for name in sorted(shown):
        numbers = [value for value in values[name] if value is not None]
        if not numbers:
            facts[".".join(name)] = "empty"
        elif len(set(numbers)) == 1:
            facts[".".join(name)] = "steady"
        else:
            charts.append(".".join(name))
    return charts, facts


@pytest.fixture(scope="module")
def collectd_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A receiver of its own, so that the fleet of the tests above stays as they count it:
    one node, which sends collectd's value lists and nothing else."""
    receiver = configure_receiver(
        tmp_path_factory.mktemp("collectd-receiver"),
        devices={COLLECTD_NODE: "token-0005"},
        operators={},
        users={USER: PASSWORD},
        expected_nodes=f'[nodes."{COLLECTD_NODE}"]\nrole = "collectd"\n',
        telemetry_interval_s=300,  # online for 10 minutes after its last POST
    )
    try:
        receiver.start(STARTUP_TIMEOUT_S)
        yield receiver
    finally:
        receiver.stop(60)


def test_a_collectd_node_has_charts_with_units(
    browser: Chromium, collectd_receiver: ReceiverProcess, tmp_path: Path
) -> None:
    bodies = collectd_bodies(time.time())
    for body in bodies:
        answer = post(collectd_receiver, "/api/collectd", body, "token-0005")
        assert answer == {"accepted": len(body), "duplicates": 0}
    expected_charts, expected_facts = collectd_page(bodies)
    assert len(expected_charts) >= 10 and "memory.memory-used.value" in expected_charts
    assert "steady" in expected_facts.values() and "empty" in expected_facts.values()

    tab = Tab(browser, 1100, 900)
    log_in(tab, collectd_receiver.url)
    assert tab.evaluate(FLEET_ROWS) == [[COLLECTD_NODE, "online", "Online"]]
    tab.evaluate(f"document.querySelector('a[href=\"/nodes/{COLLECTD_NODE}\"]').click()")
    tab.wait_for(CHARTS_READY % "24h")
    tab.evaluate("document.querySelector('.ranges a[data-range=\"1h\"]').click()")
    tab.wait_for(CHARTS_READY % "1h")
    assert tab.evaluate("document.querySelector('h1').textContent").startswith(COLLECTD_NODE)

    charts = tab.evaluate(DRAWN_CHARTS)
    assert [chart["name"] for chart in charts] == expected_charts
    assert tab.evaluate("document.getElementById('charts').dataset.charts") == str(
        len(expected_charts)
    )
    for chart in charts:
        assert chart["state"] == "drawn", chart
        assert chart["points"] >= COLLECTD_MINUTES - 1, chart
        assert chart["linePixels"] > 50, chart
        assert 0 < chart["yLabelWidth"] < chart["yAxisSize"] - 10, chart
    # The unit comes from the collectd type: memory in MiB, CPU and disk use in %, a
    # network interface in B/s or KiB/s; load has none. No tick needs more than two
    # decimals (ticks 500 B apart read "6 500 B/s", not "6.34766 KiB/s").
    by_name = {chart["name"]: chart for chart in charts}
    units = {
        "memory.memory-used.value": ("bytes", r"\d+ MiB"),
        "cpu-0.percent-user.value": ("%", r"\d+(\.\d+)?\u202f%"),
        "df-root.percent_bytes-used.value": ("%", r"\d+(\.\d+)?\u202f%"),
        "interface-lo.if_octets.rx": ("bytes/s", r"[\d\u202f]+(\.\d+)? (B|KiB)/s"),
        "load.load.shortterm": ("", r"\d+(\.\d+)?"),
    }
    for name, (unit, pattern) in units.items():
        assert by_name[name]["unit"] == unit, by_name[name]
        ticks = by_name[name]["yTicks"].split(" | ")
        assert len(ticks) >= 2 and all(re.fullmatch(pattern, t) for t in ticks), (name, ticks)
    for chart in charts:
        assert not re.search(r"\.\d{3}", chart["yTicks"]), chart
    # Zeros (swap, idle states) are steady facts with their unit; a data source that
    # was always NaN (a disk's rates before collectd had two samples) is an empty one.
    assert tab.evaluate(FACT_STATES) == expected_facts
    facts = tab.evaluate(FACTS)
    assert facts["swap.swap-used.value"] == "0 B"
    assert facts["interface-eth0.if_octets.rx"] == "0 B/s"
    assert tab.evaluate("document.getElementById('charts').dataset.facts") == str(
        len(expected_facts)
    )
    assert tab.problems() == []

    screenshot = tab.screenshot(height=1600)  # the facts and the first charts
    assert png_size(screenshot) == (1100, 1600)
    (tmp_path / "dashboard-collectd.png").write_bytes(screenshot)
    destination = os.environ.get("BEAM_DASHBOARD_COLLECTD_SCREENSHOT")
    if destination:
        Path(destination).write_bytes(screenshot)

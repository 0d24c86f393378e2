from __future__ import annotations

import threading
import time
from typing import Any

from beam_agent.config import SensorConfig
from beam_agent.drivers import Driver, DriverError
from beam_agent.drivers.base import Emit
from beam_agent.reading import Reading
from beam_agent.scheduler import Scheduler, TokenBucket, backoff_delay

from tests.support.waiting import wait_for


class Counting(Driver):
    type_name = "counting"

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.n = 0

    def read(self) -> list[Any]:
        self.n += 1
        return [self.sample({"n": self.n})]


class Broken(Driver):
    type_name = "broken"

    def read(self) -> list[Any]:
        raise DriverError("no such device /dev/ttyUSB9")


class Hanging(Driver):
    type_name = "hanging"
    release = threading.Event()

    def read(self) -> list[Any]:
        self.release.wait(30)
        return []


class Flooding(Driver):
    type_name = "flooding"

    def read(self) -> list[Any]:
        return [self.sample({"i": i}) for i in range(5000)]


class FlakyStream(Driver):
    type_name = "flaky_stream"
    streaming = True
    starts = 0

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        type(self).starts += 1
        emit(self.sample({"start": type(self).starts}))
        raise DriverError("connection lost")


class QuitterStream(Driver):
    """A plugin whose stream() returns at once instead of blocking or raising."""

    type_name = "quitter"
    streaming = True
    starts = 0

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        type(self).starts += 1


def sensor(
    name: str,
    driver: type[Driver],
    interval_ms: int = 20,
    timeout_ms: int = 200,
    max_rate_hz: float = 1000.0,
) -> SensorConfig:
    return SensorConfig(
        name=name,
        sensor_type=driver.type_name,
        driver_class=driver,
        options={},
        interval_ms=interval_ms,
        timeout_ms=timeout_ms,
        max_rate_hz=max_rate_hz,
    )


class Collector:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.lock = threading.Lock()

    def __call__(self, reading: Reading) -> None:
        with self.lock:
            self.readings.append(reading)

    def by_sensor(self, name: str) -> list[Reading]:
        with self.lock:
            return [r for r in self.readings if r.sensor == name]


def test_failing_and_hanging_drivers_do_not_stop_a_healthy_one() -> None:
    Hanging.release.clear()  # another test may have released it: every test stands alone
    sink = Collector()
    scheduler = Scheduler(
        [sensor("good", Counting), sensor("broken", Broken), sensor("hung", Hanging)], "dev-1", sink
    )
    scheduler.start()
    try:
        wait_for(lambda: len(sink.by_sensor("good")) >= 30, 15, "30 good readings")
        wait_for(lambda: scheduler.stats()["hung"]["timeouts"] >= 1, 15, "a hung read to time out")
    finally:
        Hanging.release.set()
        scheduler.stop()
    stats = scheduler.stats()
    good = sink.by_sensor("good")
    assert [r.payload["n"] for r in good] == list(range(1, len(good) + 1))
    assert all(r.device_id == "dev-1" and r.sensor_type == "counting" for r in good)
    assert stats["good"]["errors"] == 0 and stats["good"]["readings"] == len(good)
    assert stats["broken"]["errors"] >= 1
    assert stats["broken"]["last_error"] == "DriverError: no such device /dev/ttyUSB9"
    assert stats["broken"]["readings"] == 0
    # Backing off: a broken sensor at 20 ms is not retried 50 times a second.
    assert stats["broken"]["errors"] < len(good)
    assert stats["hung"]["last_error"] is not None


def test_flooding_driver_is_throttled_per_sensor() -> None:
    sink = Collector()
    scheduler = Scheduler(
        [sensor("flood", Flooding, interval_ms=50, max_rate_hz=100), sensor("good", Counting)],
        "dev-1",
        sink,
    )
    scheduler.start()
    try:
        wait_for(lambda: scheduler.stats()["flood"]["throttled"] >= 5000, 15, "5000 throttled")
        wait_for(lambda: len(sink.by_sensor("good")) >= 10, 15, "10 good readings")
    finally:
        scheduler.stop()
    stats = scheduler.stats()["flood"]
    assert stats["readings"] == len(sink.by_sensor("flood"))
    assert stats["readings"] < stats["throttled"]


def test_streaming_driver_is_restarted_after_an_error() -> None:
    sink = Collector()
    FlakyStream.starts = 0
    scheduler = Scheduler([sensor("stream", FlakyStream)], "dev-1", sink)
    scheduler.start()
    try:
        wait_for(lambda: FlakyStream.starts >= 2, 20, "the stream's restart")
    finally:
        scheduler.stop()
    assert [r.payload["start"] for r in sink.by_sensor("stream")][:2] == [1, 2]
    assert scheduler.stats()["stream"]["errors"] >= 2


def test_stop_returns_even_with_a_hung_driver() -> None:
    Hanging.release.clear()
    scheduler = Scheduler([sensor("hung", Hanging, timeout_ms=10_000)], "dev-1", Collector())
    scheduler.start()
    time.sleep(0.2)
    started = time.monotonic()
    scheduler.stop(timeout=1.0)
    Hanging.release.set()
    assert time.monotonic() - started < 15  # bounded by the join timeout, not the driver


def test_backoff_grows_and_is_capped() -> None:
    assert backoff_delay(0.5, 0) == 0.5
    delays = [backoff_delay(0.5, n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == 1.0 and delays[-1] == 60.0


def test_token_bucket_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(100)) == 10  # burst capacity
    now[0] += 1.0
    assert sum(bucket.take() for _ in range(100)) == 10  # refilled at 10 per second


def test_a_stream_that_returns_early_is_backed_off_not_spun() -> None:
    QuitterStream.starts = 0
    scheduler = Scheduler([sensor("quitter", QuitterStream)], "dev-1", Collector())
    scheduler.start()
    try:
        wait_for(lambda: scheduler.stats()["quitter"]["errors"] >= 2, 20, "two early returns")
    finally:
        scheduler.stop()
    assert QuitterStream.starts <= 4  # about 1 s, then 2 s between restarts: no busy loop
    assert scheduler.stats()["quitter"]["last_error"] == "stream ended without an error"

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beam_agent.config import load_config
from beam_agent.drivers import DriverError, OptionError, resolve_driver
from beam_agent.drivers.mightyohm import MightyOhmDriver, parse_mightyohm
from beam_agent.reading import Reading
from beam_agent.scheduler import Scheduler

from tests.support.devices import WAIT_S, FakeSerialDevice, StreamRunner
from tests.support.waiting import wait_for

LINE = b"CPS, 1, CPM, 38, uSv/hr, 0.21, SLOW\r\n"


@pytest.fixture
def device(tmp_path: Path) -> Iterator[FakeSerialDevice]:
    fake = FakeSerialDevice(tmp_path, "ttyGEIGER")
    yield fake
    fake.close()


@pytest.fixture
def driver(device: FakeSerialDevice) -> MightyOhmDriver:
    return MightyOhmDriver({"port": device.port, "timeout_s": 10.0})


@pytest.fixture
def runner(driver: MightyOhmDriver) -> Iterator[StreamRunner]:
    stream = StreamRunner(driver)
    yield stream
    stream.close()


# -- parsing -------------------------------------------------------------------------------


def test_parses_the_firmware_line_into_the_contract_payload() -> None:
    assert parse_mightyohm("CPS, 1, CPM, 38, uSv/hr, 0.21, SLOW") == {
        "cps": 1,
        "cpm": 38,
        "usv_per_hr": 0.21,
        "mode": "SLOW",
    }


@pytest.mark.parametrize(
    "line, mode",
    [
        ("CPS,0,CPM,12,uSv/hr,0.06,FAST", "FAST"),
        ("  CPS ,  7 , CPM , 420 , uSv/hr , 2.39 , INST \r", "INST"),
        ("cps, 3, cpm, 40, usv/hr, 0.22, slow", "SLOW"),
    ],
)
def test_tolerates_whitespace_cr_and_case(line: str, mode: str) -> None:
    assert parse_mightyohm(line)["mode"] == mode


@pytest.mark.parametrize(
    "line, problem",
    [
        ("", "expected 7"),
        ("CPS, 1, CPM, 38, uSv/hr, 0.21", "expected 7"),
        ("CPS, 1, CPM, 38, uSv/hr, 0.21, SLOW, extra", "expected 7"),
        ("PM, 1, CPM, 38, uSv/hr, 0.21, SLOW", "labels"),
        ("CPS, 1, CPH, 38, uSv/hr, 0.21, SLOW", "labels"),
        ("CPS, one, CPM, 38, uSv/hr, 0.21, SLOW", "CPS 'one'"),
        ("CPS, -1, CPM, 38, uSv/hr, 0.21, SLOW", "CPS '-1'"),
        ("CPS, 1, CPM, 3.5, uSv/hr, 0.21, SLOW", "CPM '3.5'"),
        ("CPS, 1, CPM, 38, uSv/hr, lots, SLOW", "uSv/hr 'lots'"),
        ("CPS, 1, CPM, 38, uSv/hr, nan, SLOW", "finite"),
        ("CPS, 1, CPM, 38, uSv/hr, -0.5, SLOW", "non-negative"),
        ("CPS, 1, CPM, 38, uSv/hr, 0.21, TURBO", "mode 'TURBO'"),
        ("CPS, \u0661, CPM, 38, uSv/hr, 0.21, SLOW", "CPS"),  # an Arabic-Indic digit
    ],
)
def test_rejects_malformed_lines_saying_why(line: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_mightyohm(line)


@given(
    cps=st.integers(0, 10**6),
    cpm=st.integers(0, 10**8),
    usv=st.floats(0, 1e4, allow_nan=False),
    mode=st.sampled_from(["SLOW", "FAST", "INST"]),
)
def test_any_line_the_firmware_can_print_round_trips(
    cps: int, cpm: int, usv: float, mode: str
) -> None:
    line = f"CPS, {cps}, CPM, {cpm}, uSv/hr, {usv:.2f}, {mode}"
    assert parse_mightyohm(line) == {
        "cps": cps,
        "cpm": cpm,
        "usv_per_hr": float(f"{usv:.2f}"),
        "mode": mode,
    }


# -- options -------------------------------------------------------------------------------


def test_is_the_registered_streaming_builtin() -> None:
    assert resolve_driver("mightyohm") is MightyOhmDriver
    assert MightyOhmDriver.streaming
    assert MightyOhmDriver.description
    assert all(option.help for option in MightyOhmDriver.options)


def test_options_get_defaults() -> None:
    options = MightyOhmDriver.validate_options({"port": "/dev/ttyUSB0"})
    assert options == {
        "port": "/dev/ttyUSB0",
        "baudrate": 9600,
        "timeout_s": 10.0,
        "max_line_bytes": 4096,
    }


@pytest.mark.parametrize(
    "raw, key",
    [
        ({}, "port"),
        ({"port": "/dev/ttyUSB0", "speed": 9600}, "speed"),
        ({"port": "/dev/ttyUSB0", "baudrate": "9600"}, "baudrate"),
        ({"port": "/dev/ttyUSB0", "baudrate": 0}, "baudrate"),
        ({"port": 1}, "port"),
        ({"port": "/dev/ttyUSB0", "timeout_s": "soon"}, "timeout_s"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        MightyOhmDriver.validate_options(raw)
    assert caught.value.key == key


def test_constructing_touches_no_hardware(tmp_path: Path) -> None:
    driver = MightyOhmDriver({"port": str(tmp_path / "no-such-tty")})
    with pytest.raises(DriverError, match=r"cannot open serial port .*no-such-tty"):
        driver.read()


# -- streaming through a real pty ----------------------------------------------------------


def test_stream_emits_one_sample_per_line(device: FakeSerialDevice, runner: StreamRunner) -> None:
    assert device.write_until(LINE, lambda: len(runner.samples) > 0)
    before = len(runner.samples)
    device.write(b"CPS, 2, CPM, 40, uSv/hr, 0.23, FAST\r\nCPS, 3, CP")
    device.write(b"M, 41, uSv/hr, 0.24, INST\r\n")  # a line split across two writes
    wait_for(lambda: len(runner.samples) >= before + 2, WAIT_S, "two more samples")
    assert runner.payloads[before:] == [
        {"cps": 2, "cpm": 40, "usv_per_hr": 0.23, "mode": "FAST"},
        {"cps": 3, "cpm": 41, "usv_per_hr": 0.24, "mode": "INST"},
    ]
    assert all(sample.sensor_type == "mightyohm" for sample in runner.samples)
    assert runner.error is None


def test_garbage_lines_are_counted_logged_and_skipped(
    device: FakeSerialDevice,
    driver: MightyOhmDriver,
    runner: StreamRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="beam_agent.drivers.mightyohm")
    assert device.write_until(LINE, lambda: len(runner.samples) > 0)
    before, skipped = len(runner.samples), driver.skipped
    device.write(b"\x00\xff\xfe garbage\r\nCPS, x, CPM\r\nCPS, 9, CPM, 99, uSv/hr, 0.5, SLOW\r\n")
    wait_for(lambda: len(runner.samples) > before, WAIT_S, "another sample")
    assert runner.payloads[before:] == [{"cps": 9, "cpm": 99, "usv_per_hr": 0.5, "mode": "SLOW"}]
    assert driver.skipped == skipped + 2
    assert any(
        "skipped unparseable line" in r.getMessage() and device.port in r.getMessage()
        for r in caplog.records
    )
    assert runner.thread.is_alive() and runner.error is None


def test_overlong_line_is_dropped_without_ending_the_stream(device: FakeSerialDevice) -> None:
    driver = MightyOhmDriver({"port": device.port, "max_line_bytes": 64})
    runner = StreamRunner(driver)
    try:
        assert device.write_until(LINE, lambda: len(runner.samples) > 0)
        before = len(runner.samples)
        device.write(b"A" * 5000 + b"\n" + b"CPS, 5, CPM, 50, uSv/hr, 0.3, SLOW\n")
        wait_for(lambda: len(runner.samples) > before, WAIT_S, "another sample")
        assert runner.payloads[before:] == [
            {"cps": 5, "cpm": 50, "usv_per_hr": 0.3, "mode": "SLOW"}
        ]
        assert driver.skipped == 1
    finally:
        runner.close()


def test_stream_returns_soon_after_stop_when_the_device_is_silent(runner: StreamRunner) -> None:
    assert not runner.finished(0.2)  # blocked reading a silent port
    runner.stop.set()
    assert runner.finished()
    assert runner.error is None


def test_stream_returns_after_stop_while_lines_keep_coming(
    device: FakeSerialDevice, runner: StreamRunner
) -> None:
    assert device.write_until(LINE, lambda: len(runner.samples) > 0)
    runner.stop.set()
    for _ in range(50):
        device.write(LINE)
    assert runner.finished()
    assert runner.error is None


def test_unplugged_device_ends_the_stream_with_driver_error(
    device: FakeSerialDevice, runner: StreamRunner
) -> None:
    assert device.write_until(LINE, lambda: len(runner.samples) > 0)
    device.unplug()
    assert runner.finished()
    assert isinstance(runner.error, DriverError)
    assert "disconnected" in str(runner.error) and device.port in str(runner.error)


def test_stream_works_again_when_the_device_comes_back(
    device: FakeSerialDevice, driver: MightyOhmDriver
) -> None:
    first = StreamRunner(driver)
    assert device.write_until(LINE, lambda: len(first.samples) > 0)
    device.unplug()
    assert first.finished() and isinstance(first.error, DriverError)

    missing = StreamRunner(driver)  # what the scheduler's retry meets while it is away
    assert missing.finished()
    assert isinstance(missing.error, DriverError) and "cannot open" in str(missing.error)

    device.plug_in()
    again = StreamRunner(driver)
    try:
        assert device.write_until(
            b"CPS, 4, CPM, 44, uSv/hr, 0.25, SLOW\n", lambda: len(again.samples) > 0
        )
        assert again.payloads[0] == {"cps": 4, "cpm": 44, "usv_per_hr": 0.25, "mode": "SLOW"}
        assert again.error is None
    finally:
        again.close()


def test_scheduler_reconnects_after_the_device_returns(
    tmp_path: Path, device: FakeSerialDevice
) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f"""
        device_id = "beamrider-0001"
        api_url = "http://127.0.0.1:9"
        device_token = "secret"
        state_dir = "{tmp_path / "state"}"

        [[sensor]]
        name = "geiger"
        type = "mightyohm"
        port = "{device.port}"
        """.replace("\n        ", "\n")
    )
    config = load_config(config_path)
    readings: list[Reading] = []
    scheduler = Scheduler(config.sensors, config.device_id, readings.append)
    scheduler.start()
    try:
        assert device.write_until(LINE, lambda: len(readings) > 0)
        device.unplug()
        wait_for(
            lambda: scheduler.stats()["geiger"]["errors"] >= 1,
            WAIT_S,
            "the unplugged device to count as an error",
        )
        device.plug_in()
        count = len(readings)
        assert device.write_until(
            b"CPS, 6, CPM, 66, uSv/hr, 0.4, FAST\n", lambda: len(readings) > count, timeout=90
        )
    finally:
        scheduler.stop()
    assert readings[-1].payload == {"cps": 6, "cpm": 66, "usv_per_hr": 0.4, "mode": "FAST"}
    assert readings[-1].sensor == "geiger" and readings[-1].sensor_type == "mightyohm"


# -- read-once -----------------------------------------------------------------------------


def test_read_returns_the_first_parseable_line(
    device: FakeSerialDevice, driver: MightyOhmDriver
) -> None:
    done = threading.Event()

    def feed() -> None:
        while not done.wait(0.05):
            device.write(b"noise\r\nCPS, 8, CPM, 80, uSv/hr, 0.44, SLOW\r\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        samples = driver.read()
    finally:
        done.set()
        writer.join()
    assert [s.payload for s in samples] == [
        {"cps": 8, "cpm": 80, "usv_per_hr": 0.44, "mode": "SLOW"}
    ]


def test_read_gives_up_after_timeout_on_a_silent_port(device: FakeSerialDevice) -> None:
    driver = MightyOhmDriver({"port": device.port, "timeout_s": 0.2})
    with pytest.raises(DriverError, match=r"no parseable line from .*ttyGEIGER within 0.2 s"):
        driver.read()

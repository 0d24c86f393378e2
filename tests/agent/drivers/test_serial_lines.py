from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beam_agent.drivers import DriverError, OptionError, resolve_driver
from beam_agent.drivers.lines import LineSplitter
from beam_agent.drivers.serial_lines import SerialLinesDriver, convert

from tests.support.devices import WAIT_S, FakeSerialDevice, StreamRunner
from tests.support.waiting import wait_for

PATTERN = r"T=(?P<temperature_c>\S+) H=(?P<humidity>\S+) ID=(?P<station>\w+)( BAT=(?P<bat>\S+))?"


@pytest.fixture
def device(tmp_path: Path) -> Iterator[FakeSerialDevice]:
    fake = FakeSerialDevice(tmp_path, "ttyWEATHER")
    yield fake
    fake.close()


def make_driver(port: str, **options: Any) -> SerialLinesDriver:
    return SerialLinesDriver({"port": port, "pattern": PATTERN, **options})


# -- options -------------------------------------------------------------------------------


def test_is_the_registered_streaming_builtin() -> None:
    assert resolve_driver("serial_lines") is SerialLinesDriver
    assert SerialLinesDriver.streaming
    names = [option.name for option in SerialLinesDriver.options]
    assert names[:3] == ["port", "baudrate", "timeout_s"]
    assert {"pattern", "types", "sensor_type"} <= set(names)


def test_valid_options_get_defaults() -> None:
    options = SerialLinesDriver.validate_options(
        {"port": "/dev/ttyACM0", "pattern": PATTERN, "types": {"station": "str", "bat": "int"}}
    )
    assert options["baudrate"] == 9600
    assert options["types"] == {"station": "str", "bat": "int"}
    assert options["sensor_type"] == ""


@pytest.mark.parametrize(
    "raw, key, problem",
    [
        ({"pattern": "(?P<v>.*)"}, "port", "required"),
        ({"port": "/dev/ttyACM0"}, "pattern", "required"),
        ({"port": "/dev/ttyACM0", "pattern": "(?P<v>[0-9"}, "pattern", "not a valid regular"),
        ({"port": "/dev/ttyACM0", "pattern": r"T=(\d+)"}, "pattern", "named group"),
        ({"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "regex": "x"}, "regex", "unknown"),
        ({"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "types": "int"}, "types", "a table"),
        (
            {"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "types": {"w": "int"}},
            "types",
            "'w' is not a named group",
        ),
        (
            {"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "types": {"v": "decimal"}},
            "types",
            "v: must be one of int, float, str",
        ),
        (
            {"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "baudrate": 9600.0},
            "baudrate",
            "integer",
        ),
        (
            {"port": "/dev/ttyACM0", "pattern": "(?P<v>.*)", "sensor_type": "has space"},
            "sensor_type",
            "letters",
        ),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(OptionError, match=problem) as caught:
        SerialLinesDriver.validate_options(raw)
    assert caught.value.key == key


def test_constructor_validates_too() -> None:
    with pytest.raises(OptionError) as caught:
        SerialLinesDriver({"port": "/dev/ttyACM0", "pattern": "no groups"})
    assert caught.value.key == "pattern"


# -- conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, type_name, expected",
    [
        ("21.5", None, 21.5),
        ("38", None, 38.0),
        ("abc", None, "abc"),
        ("nan", None, "nan"),  # JSON has no NaN: an undeclared group keeps the text
        ("inf", None, "inf"),
        ("38", "int", 38),
        ("-4", "int", -4),
        ("38", "str", "38"),
        ("2.5", "float", 2.5),
        (None, "int", None),
    ],
)
def test_convert(text: Optional[str], type_name: Optional[str], expected: object) -> None:
    assert convert("g", text, type_name) == expected
    assert type(convert("g", text, type_name)) is type(expected)


@pytest.mark.parametrize(
    "text, type_name, problem",
    [
        ("3.5", "int", "'3.5' is not an int"),
        ("abc", "float", "'abc' is not a float"),
        ("nan", "float", "not a finite number"),
    ],
)
def test_convert_rejects_what_does_not_fit_the_declared_type(
    text: str, type_name: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        convert("g", text, type_name)


def test_parse_line_builds_payload_from_named_groups() -> None:
    driver = make_driver("/dev/null", types={"bat": "int", "station": "str"})
    sample = driver.parse_line("noise T=21.5 H=40 ID=roof BAT=87")
    assert sample.payload == {"temperature_c": 21.5, "humidity": 40.0, "station": "roof", "bat": 87}
    assert sample.sensor_type == "serial_lines"
    optional_missing = driver.parse_line("T=-3.25 H=99.5 ID=yard")
    assert optional_missing.payload["bat"] is None
    with pytest.raises(ValueError, match="does not match"):
        driver.parse_line("hello")
    with pytest.raises(ValueError, match="group 'bat': '1x' is not an int"):
        driver.parse_line("T=1 H=2 ID=x BAT=1x")


# -- line framing (shared by the serial drivers and tcp_json) ------------------------------


def test_splitter_handles_every_line_end_and_partial_lines() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"one\r\ntwo\nthree\rfo") == [b"one", b"two", b"three"]
    assert splitter.feed(b"ur\r") == [b"four"]
    assert splitter.feed(b"\n\n  \r\n") == []  # blank lines are not lines


def test_splitter_skip_first_drops_the_partial_first_line() -> None:
    splitter = LineSplitter(100, skip_first=True)
    assert splitter.feed(b"=21.5 H=40\nT=22.0 H=41\n") == [b"T=22.0 H=41"]


def test_splitter_drops_overlong_lines_and_reports_each_once() -> None:
    reports: list[int] = []
    splitter = LineSplitter(10, on_overlong=lambda: reports.append(1))
    assert splitter.feed(b"0123456789") == []
    assert splitter.feed(b"X" * 1000) == []
    assert splitter.feed(b"X" * 1000 + b"\nshort\n") == [b"short"]
    assert splitter.feed(b"0123456789\n") == [b"0123456789"]  # exactly at the bound is fine
    assert reports == [1]
    assert len(splitter.pending) == 0


@given(
    lines=st.lists(
        st.binary(min_size=1, max_size=30).filter(
            lambda b: b"\n" not in b and b"\r" not in b and b.strip() != b""
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 1000), max_size=10),
)
def test_splitter_result_does_not_depend_on_how_bytes_arrive(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    positions = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    splitter = LineSplitter(30)
    received: list[bytes] = []
    for start, end in zip(positions, positions[1:]):
        received.extend(splitter.feed(stream[start:end]))
    assert received == lines


# -- through a real pty --------------------------------------------------------------------


def test_stream_emits_matching_lines_with_types_and_sensor_type(
    device: FakeSerialDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="beam_agent.drivers.serial_lines")
    driver = make_driver(
        device.port,
        types={"bat": "int", "station": "str"},
        sensor_type="weather_station",
        baudrate=115200,
    )
    runner = StreamRunner(driver)
    try:
        assert device.write_until(b"T=1 H=1 ID=sync\r\n", lambda: len(runner.samples) > 0)
        before, skipped = len(runner.samples), driver.skipped
        device.write(
            b"# boot banner v1.2\r\nT=20.5 H=55 ID=roof BAT=90\r\n"
            b"T=20.6 H=54 ID=roof BAT=low\r\nT=20.7 H=53 ID=roof\r\n"
        )
        wait_for(lambda: len(runner.samples) >= before + 2, WAIT_S, "two more samples")
        assert runner.payloads[before:] == [
            {"temperature_c": 20.5, "humidity": 55.0, "station": "roof", "bat": 90},
            {"temperature_c": 20.7, "humidity": 53.0, "station": "roof", "bat": None},
        ]
        assert {sample.sensor_type for sample in runner.samples} == {"weather_station"}
        assert driver.skipped == skipped + 2  # the banner and 'BAT=low', which is no int
        assert any("# boot banner" in record.getMessage() for record in caplog.records)
    finally:
        runner.close()
    assert runner.error is None


def test_unplug_and_replug(device: FakeSerialDevice) -> None:
    driver = make_driver(device.port)
    first = StreamRunner(driver)
    assert device.write_until(b"T=1 H=2 ID=a\n", lambda: len(first.samples) > 0)
    device.unplug()
    assert first.finished()
    assert isinstance(first.error, DriverError)
    device.plug_in()
    second = StreamRunner(driver)
    try:
        assert device.write_until(b"T=3 H=4 ID=b\n", lambda: len(second.samples) > 0)
        assert second.payloads[0] == {
            "temperature_c": 3.0,
            "humidity": 4.0,
            "station": "b",
            "bat": None,
        }
    finally:
        second.close()


def test_read_once_returns_first_match(device: FakeSerialDevice) -> None:
    driver = make_driver(device.port, timeout_s=30.0)
    done = threading.Event()

    def feed() -> None:
        while not done.wait(0.05):
            device.write(b"garbage\nT=5 H=6 ID=c\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        samples = driver.read()
    finally:
        done.set()
        writer.join()
    assert [s.payload for s in samples] == [
        {"temperature_c": 5.0, "humidity": 6.0, "station": "c", "bat": None}
    ]


def test_read_once_fails_clearly_when_nothing_matches(device: FakeSerialDevice) -> None:
    driver = make_driver(device.port, timeout_s=0.3)
    with pytest.raises(DriverError, match="no parseable line"):
        driver.read()

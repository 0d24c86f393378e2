"""Command driver against real subprocesses: every way a program can misbehave."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from beam_agent.drivers import resolve_driver
from beam_agent.drivers.base import DriverError, OptionError
from beam_agent.drivers.command import CommandDriver, parse_output

from tests.support.readings import assert_json_payload


def python(code: str, timeout_s: float = 30.0) -> CommandDriver:
    """A driver running `code` in a fresh interpreter."""
    return CommandDriver({"command": [sys.executable, "-c", code], "timeout_s": timeout_s})


def test_one_json_object_is_one_sample() -> None:
    [sample] = python("import json; print(json.dumps({'temp': 21.5, 'ok': True}))").read()
    assert sample.sensor_type == "command"
    assert sample.payload == {"temp": 21.5, "ok": True}


def test_a_pretty_printed_object_is_still_one_sample() -> None:
    [sample] = python("import json; print(json.dumps({'a': 1, 'b': [1, 2]}, indent=2))").read()
    assert sample.payload == {"a": 1, "b": [1, 2]}


def test_json_lines_are_one_sample_each_in_order() -> None:
    code = "for i in range(3): print('{\"i\": %d}' % i)\nprint()"
    samples = python(code).read()
    assert [s.payload for s in samples] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_arguments_reach_the_program_unmodified_without_a_shell(tmp_path: Path) -> None:
    code = "import json, sys; print(json.dumps({'args': sys.argv[1:]}))"
    tricky = ["$HOME", "a b", "; rm -rf /", "*"]
    driver = CommandDriver({"command": [sys.executable, "-c", code, *tricky]})
    [sample] = driver.read()
    assert sample.payload == {"args": tricky}


def test_stdin_is_closed_so_a_reading_program_does_not_hang() -> None:
    code = "import json, sys; print(json.dumps({'stdin': sys.stdin.read()}))"
    [sample] = python(code).read()
    assert sample.payload == {"stdin": ""}


def test_non_finite_numbers_become_null() -> None:
    [sample] = python('print(\'{"a": NaN, "b": -Infinity, "c": 1e999, "d": 2.5}\')').read()
    assert sample.payload == {"a": None, "b": None, "c": None, "d": 2.5}
    assert_json_payload(sample.payload)


def test_a_non_zero_exit_names_the_status_and_quotes_stderr() -> None:
    code = "import sys; sys.stderr.write('sensor not found on bus 3\\n'); sys.exit(3)"
    with pytest.raises(DriverError) as caught:
        python(code).read()
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "stderr: sensor not found on bus 3" in message


def test_a_long_stderr_is_cut_to_its_end() -> None:
    code = "import sys; sys.stderr.write('x' * 5000 + ' the real reason'); sys.exit(1)"
    with pytest.raises(DriverError) as caught:
        python(code).read()
    message = str(caught.value)
    assert message.endswith("the real reason")
    assert len(message) < 400


def test_death_by_signal_is_named() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(DriverError, match="was killed by SIGKILL"):
        python(code).read()


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody reaped counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_a_timeout_kills_the_command_and_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "sys.stderr.write('waiting for the sensor\\n'); sys.stderr.flush()\n"
        "time.sleep(120)\n"
    )
    driver = python(code, timeout_s=5.0)
    with pytest.raises(DriverError) as caught:
        driver.read()
    message = str(caught.value)
    assert "timed out after 5 s and was killed" in message
    assert "waiting for the sensor" in message
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while not process_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(grandchild)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("print('temperature=21')", "printed invalid JSON: 'temperature=21'"),
        ("print('[1, 2]')", "printed JSON array, not an object"),
        ("print('42')", "printed JSON number, not an object"),
        ("print('\"hi\"')", "printed JSON string, not an object"),
        ("print('{\"a\": 1}'); print('oops')", "printed invalid JSON on line 2: 'oops'"),
        ("print('{\"a\": 1}'); print('[]')", "printed JSON array on line 2, not an object"),
        ("pass", "printed nothing on stdout"),
        ("print('   ')", "printed nothing on stdout"),
    ],
)
def test_output_that_is_not_json_objects_is_a_driver_error(code: str, expected: str) -> None:
    with pytest.raises(DriverError) as caught:
        python(code).read()
    assert expected in str(caught.value)
    assert str(caught.value).startswith(f"command {sys.executable!r} ")


def test_bad_output_errors_also_quote_stderr() -> None:
    code = "import sys; sys.stderr.write('calibration missing'); print('n/a')"
    with pytest.raises(DriverError, match=r"invalid JSON.*stderr: calibration missing"):
        python(code).read()


def test_output_that_is_not_utf8_is_a_driver_error() -> None:
    with pytest.raises(DriverError, match="not UTF-8"):
        python('import sys; sys.stdout.buffer.write(b\'{"a": "\\xff"}\')').read()


def test_a_missing_program_is_a_driver_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-probe")
    with pytest.raises(DriverError, match=r"command '.*no-such-probe' not found"):
        CommandDriver({"command": [missing]}).read()


def test_a_program_that_cannot_be_executed_is_a_driver_error(tmp_path: Path) -> None:
    script = tmp_path / "probe.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    os.chmod(script, 0o644)  # not executable
    with pytest.raises(DriverError, match="could not be started"):
        CommandDriver({"command": [str(script)]}).read()


def test_parse_output_is_usable_on_its_own() -> None:
    assert parse_output('{"a": 1}\n') == [{"a": 1}]
    assert parse_output('{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="line 3"):
        parse_output('{"a": 1}\n\n{"a": \n')


def test_registered_under_its_type_name_with_documented_options() -> None:
    assert resolve_driver("command") is CommandDriver
    assert CommandDriver.description
    assert all(option.help for option in CommandDriver.options)


def test_defaults() -> None:
    assert CommandDriver.validate_options({"command": ["true"]}) == {
        "command": ["true"],
        "timeout_s": 10.0,
    }


def test_validated_options_construct_the_driver_as_the_config_loader_does() -> None:
    options = CommandDriver.validate_options({"command": ["true"]})
    assert CommandDriver.validate_options(options) == options  # validating twice changes nothing
    assert CommandDriver(options).config == options


@pytest.mark.parametrize(
    "raw, key, message",
    [
        ({}, "command", "is required"),
        ({"command": "ls -l"}, "command", "must be a list"),
        ({"command": []}, "command", "empty list"),
        ({"command": ["ls", 3]}, "command", "item 1 must be a string"),
        ({"command": [""]}, "command", "program name"),
        ({"command": ["ls"], "timeout_s": 0}, "timeout_s", "at least"),
        ({"command": ["ls"], "timeout_s": "10"}, "timeout_s", "must be a number"),
        ({"command": ["ls"], "shell": True}, "shell", "unknown option"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        CommandDriver.validate_options(raw)
    assert caught.value.key == key
    assert message in caught.value.message

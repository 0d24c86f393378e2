from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from beam_agent.config import ConfigError, load_config

VALID = """
device_id = "beamrider-0001"
api_url = "http://receiver.local:8000/"
device_token_file = "agent.token"
state_dir = "/var/lib/beam-agent"

[queue]
max_readings = 5000
overflow = "thin"

[push]
batch_size = 100
interval_ms = 250
timeout_s = 3

[telemetry]
interval_s = 15

[[sensor]]
name = "wave"
type = "virtual"
interval_ms = 100
signal = "sine"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.lines()


def test_valid_config_is_typed_and_complete(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.device_id == "beamrider-0001"
    assert config.api_url == "http://receiver.local:8000"
    assert config.device_token_file == tmp_path / "agent.token"
    assert config.queue.max_readings == 5000 and config.queue.overflow == "thin"
    assert config.push.batch_size == 100 and config.push.timeout_s == 3.0
    assert config.telemetry.interval_s == 15.0
    (sensor,) = config.sensors
    assert sensor.name == "wave" and sensor.interval_ms == 100
    assert sensor.options["signal"] == "sine"


def test_token_file_wins_and_is_reread(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'device_token = "inline"\n' + VALID))
    (tmp_path / "agent.token").write_text("first\n")
    assert config.read_token() == "first"
    (tmp_path / "agent.token").write_text("second\n")
    assert config.read_token() == "second"


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
        device_id = "has space"
        api_url = "ftp://nowhere"
        surprise = 1
        [queue]
        max_readings = 0
        overflow = "random"
        [push]
        batch_size = "many"
        [[sensor]]
        name = "a"
        type = "virtual"
        [[sensor]]
        name = "a"
        type = "no_such_type"
        [[sensor]]
        name = "b"
        type = "virtual"
        signal = "square"
        """,
    )
    path = str(tmp_path / "config.toml")
    assert all(line.startswith(path + ": ") for line in lines)
    text = "\n".join(lines)
    for key in (
        "device_id",
        "api_url",
        "surprise: unknown key",
        "queue.max_readings",
        "queue.overflow",
        "push.batch_size",
        "device_token_file",
        "sensor[1] (a).name: duplicate",
        "sensor[1] (a).type: unknown sensor type",
        "sensor[2] (b).signal",
    ):
        assert key in text, f"{key!r} not reported in:\n{text}"


def test_missing_required_keys(tmp_path: Path) -> None:
    text = "\n".join(problems(tmp_path, "state_dir = '/tmp/x'\n"))
    assert "device_id: is required" in text
    assert "api_url: is required" in text


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "device_id = \n")
    assert "invalid TOML" in line and "config.toml" in line


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert "cannot read" in str(caught.value)


def test_plugin_driver_by_module_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent("""
        from beam_agent.drivers import Driver, Option
        class Thermo(Driver):
            type_name = "thermo"
            options = (Option("gain", float, 1.0),)
            def read(self):
                return [self.sample({"t": 21.5 * self.config["gain"]})]
        class NotADriver:
            pass
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(
        write(
            tmp_path,
            VALID
            + """
[[sensor]]
name = "plug"
type = "thermo"
driver = "my_plugin:Thermo"
gain = 2
""",
        )
    )
    sensor = config.sensor("plug")
    assert sensor.options == {"gain": 2.0}
    assert sensor.create_driver().read()[0].payload == {"t": 43.0}

    lines = problems(
        tmp_path,
        VALID
        + """
[[sensor]]
name = "bad"
type = "thermo"
driver = "my_plugin:NotADriver"
""",
    )
    assert any(
        "sensor[1] (bad).driver" in line and "not a beam_agent Driver" in line for line in lines
    )


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        VALID.replace("interval_s = 15", "interval_s = nan").replace(
            "timeout_s = 3", "timeout_s = inf"
        ),
    )
    text = "\n".join(lines)
    assert "telemetry.interval_s: must be a finite number, got nan" in text
    assert "push.timeout_s: must be a finite number, got inf" in text


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    config = load_config(write(tmp_path, VALID.replace('"/var/lib/beam-agent"', '"state"')))
    assert config.state_dir == tmp_path / "state"
    assert config.device_token_file == tmp_path / "agent.token"


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("https://host/api/readings", "https://host"),
        ("https://host:8443/api/readings/", "https://host:8443"),
        ("https://host/api", "https://host"),
        ("https://host/beam/api/telemetry", "https://host/beam"),
    ],
)
def test_an_api_url_into_the_endpoints_is_cut_to_its_base_with_a_warning(
    tmp_path: Path, written: str, used: str
) -> None:
    config = load_config(write(tmp_path, VALID.replace("http://receiver.local:8000/", written)))
    assert config.api_url == used
    (warning,) = config.warnings
    line = warning.line(config.path)
    assert line.startswith(f"{config.path}: api_url: warning: ")
    assert f"write api_url = {used!r}" in line and "/api/readings" in line


@pytest.mark.parametrize("kept", ["https://host", "https://host/beam", "http://10.0.0.5:8000/"])
def test_a_base_url_or_a_prefix_is_kept_without_warning(tmp_path: Path, kept: str) -> None:
    config = load_config(write(tmp_path, VALID.replace("http://receiver.local:8000/", kept)))
    assert config.api_url == kept.rstrip("/") and config.warnings == ()


@pytest.mark.parametrize("url", ["https://host/?token=x", "https://host#readings"])
def test_an_api_url_with_a_query_or_fragment_is_refused_naming_the_fix(
    tmp_path: Path, url: str
) -> None:
    (line,) = problems(tmp_path, VALID.replace("http://receiver.local:8000/", url))
    assert line.startswith(f"{tmp_path / 'config.toml'}: api_url: ")
    assert "query or fragment" in line and "'https://host'" in line

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from beam_agent.config import load_config
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading

from tests.support.agent import write_agent_config
from tests.support.processes import Command

SENSORS = """
[[sensor]]
name = "wave"
type = "virtual"
signal = "counter"

[[sensor]]
name = "walk"
type = "virtual"
signal = "random_walk"
seed = 7
"""


def test_check_config_ok(tmp_path: Path, beam_agent: Command) -> None:
    config = write_agent_config(tmp_path, "http://127.0.0.1:9", SENSORS)
    result = beam_agent("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "2 sensors: wave, walk" in result.stdout


def test_check_config_exit_78_one_line_per_problem(tmp_path: Path, beam_agent: Command) -> None:
    config = write_agent_config(
        tmp_path,
        "not-a-url",
        """
        [[sensor]]
        name = "g"
        type = "mightyohm"
        baudrate = "9600"

        [[sensor]]
        name = "x"
        type = "warp_drive"
        """,
        queue={"overflow": "shred"},
    )
    result = beam_agent("check-config", "--config", str(config))
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    assert all(line.startswith(f"{config}: ") for line in lines)
    joined = result.stderr
    assert "api_url" in joined and "queue.overflow" in joined
    assert "sensor[0] (g).port: is required" in joined or "sensor[0] (g).baudrate" in joined
    assert "sensor[1] (x).type: unknown sensor type 'warp_drive'" in joined


def test_check_config_takes_a_seed_api_url_and_says_what_to_write(
    tmp_path: Path, beam_agent: Command
) -> None:
    config = write_agent_config(tmp_path, "https://receiver.example/api/readings", SENSORS)
    result = beam_agent("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"{config}: api_url: warning: ")
    assert "write api_url = 'https://receiver.example'" in result.stderr


def test_run_with_invalid_config_exits_78(tmp_path: Path, beam_agent: Command) -> None:
    config = tmp_path / "config.toml"
    config.write_text("device_id = 5\n")
    result = beam_agent("run", "--config", str(config))
    assert result.returncode == 78
    assert f"{config}: device_id: must be a string" in result.stderr


def test_read_once_prints_readings_and_queues_nothing(tmp_path: Path, beam_agent: Command) -> None:
    config = write_agent_config(tmp_path, "http://127.0.0.1:9", SENSORS)
    result = beam_agent("read-once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["sensor"] for r in readings] == ["wave", "walk"]
    assert readings[0]["payload"] == {"value": 1}
    assert all(r["seq"] is None and r["device_id"] == "beamrider-0001" for r in readings)
    assert all(r["timestamp"].endswith("Z") for r in readings)
    assert not (tmp_path / "agent-state" / "queue.db").exists()

    one = beam_agent("read-once", "--config", str(config), "--sensor", "walk")
    assert [json.loads(line)["sensor"] for line in one.stdout.splitlines()] == ["walk"]
    missing = beam_agent("read-once", "--config", str(config), "--sensor", "nope")
    assert missing.returncode == 2 and "no sensor named 'nope'" in missing.stderr


def test_read_once_reports_a_failing_sensor(tmp_path: Path, beam_agent: Command) -> None:
    config = write_agent_config(
        tmp_path,
        "http://127.0.0.1:9",
        """
        [[sensor]]
        name = "battery"
        type = "power_supply"
        root = "/nonexistent/power_supply"
        supplies = ["BAT0"]
        """,
    )
    result = beam_agent("read-once", "--config", str(config))
    assert result.returncode == 1
    assert "sensor 'battery' (power_supply)" in result.stderr


def test_read_once_on_a_node_without_a_battery_succeeds_with_a_note(
    tmp_path: Path, beam_agent: Command
) -> None:
    (tmp_path / "power_supply").mkdir()  # the class exists, no supply in it: a Raspberry Pi
    config = write_agent_config(
        tmp_path,
        "http://127.0.0.1:9",
        f"""
        [[sensor]]
        name = "battery"
        type = "power_supply"
        root = "{tmp_path / "power_supply"}"
        """,
    )
    result = beam_agent("read-once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    [reading] = [json.loads(line) for line in result.stdout.splitlines()]
    assert reading["payload"]["capacity"] is None
    assert reading["payload"]["note"].startswith("no power supply: ")


def test_drivers_lists_every_builtin_with_options(beam_agent: Command) -> None:
    result = beam_agent("drivers")
    assert result.returncode == 0, result.stdout
    for name in (
        "system",
        "power_supply",
        "bme280",
        "mightyohm",
        "serial_lines",
        "tcp_json",
        "http_json",
        "mqtt",
        "command",
        "virtual",
    ):
        assert f"\n{name} (" in "\n" + result.stdout
    assert "port (str, required)" in result.stdout


def fill_state(tmp_path: Path, config_path: Path) -> None:
    config = load_config(config_path)
    queue = ReadingQueue(config.state_dir, config.queue.max_readings, config.queue.overflow)
    start = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
    queue.enqueue(
        [
            Reading(
                "beamrider-0001",
                "geiger",
                "mightyohm",
                {"cps": i, "cpm": 30 + i, "usv_per_hr": 0.2, "mode": "SLOW"},
                start + timedelta(minutes=i),
            )
            for i in range(5)
        ]
        + [Reading("beamrider-0001", "env", "bme280", {"temperature_c": 21.5}, start)]
    )
    queue.ack([1, 2])
    queue.close()


def test_status_and_export(tmp_path: Path, beam_agent: Command) -> None:
    config = write_agent_config(tmp_path, "http://127.0.0.1:9", SENSORS)
    for command in (["status"], ["export", "--format", "csv"]):
        missing = beam_agent(*command, "--config", str(config))
        assert missing.returncode == 1 and "no agent state" in missing.stderr
        assert "Traceback" not in missing.stderr
    fill_state(tmp_path, config)

    status = json.loads(beam_agent("status", "--config", str(config), "--json").stdout)
    assert status["depth"] == 4
    assert status["counters"]["pushed"] == 2
    assert status["device_id"] == "beamrider-0001"
    human = beam_agent("status", "--config", str(config)).stdout
    assert "queue depth:       4" in human

    jsonl = beam_agent(
        "export",
        "--config",
        str(config),
        "--format",
        "jsonl",
        "--sensor",
        "geiger",
        "--since",
        "2026-02-15T19:02:00Z",
    ).stdout
    exported = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["seq"] for r in exported] == [3, 4, 5]
    assert exported[0]["payload"]["cpm"] == 32

    rows = list(
        csv.DictReader(
            io.StringIO(beam_agent("export", "--config", str(config), "--format", "csv").stdout)
        )
    )
    assert len(rows) == 6
    assert rows[0]["cpm"] == "30" and rows[0]["mode"] == "SLOW" and rows[0]["seq"] == "1"
    assert rows[5]["temperature_c"] == "21.5" and rows[5]["cpm"] == ""

    bad = beam_agent("export", "--config", str(config), "--format", "csv", "--since", "soon")
    assert bad.returncode == 2 and "not an RFC 3339 timestamp" in bad.stderr

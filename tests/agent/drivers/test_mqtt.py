"""The mqtt driver against a real Mosquitto broker on a loopback port (tests.support.mqtt):
wildcards, payload formats, QoS 1 sessions, retained messages, a password file, TLS with a
test CA, and reconnecting through the scheduler's back-off when the broker goes away."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beam_agent.config import ConfigError, SensorConfig, load_config
from beam_agent.drivers import DriverError, OptionError, resolve_driver
from beam_agent.drivers.mqtt import MqttDriver
from beam_agent.reading import Reading
from beam_agent.scheduler import SensorWorker

from tests.support.agent import write_agent_config
from tests.support.devices import WAIT_S, StreamRunner
from tests.support.mqtt import Mosquitto, publish
from tests.support.readings import assert_json_payload
from tests.support.tls import issue_server_certificate, make_ca
from tests.support.waiting import wait_for

USER, PASSWORD = "beam-node", "s3cret-for-the-broker"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def driver_for(port: int, **options: Any) -> MqttDriver:
    return MqttDriver({"host": "127.0.0.1", "port": port, "topics": ["sensors/#"], **options})


def subscribed(driver: MqttDriver) -> StreamRunner:
    """The driver streaming on a thread, once the broker has confirmed its subscriptions."""
    runner = StreamRunner(driver)
    wait_for(lambda: driver.subscribed or runner.error, WAIT_S, "the subscription")
    assert runner.error is None, runner.error
    return runner


def test_wildcard_subscriptions_map_json_and_bare_values(broker: Mosquitto) -> None:
    driver = driver_for(broker.port, topics=["site/+/temperature", "tele/#"])
    runner = subscribed(driver)
    try:
        publish(
            broker.port,
            [
                ("site/roof/temperature", b'{"c": 21.5, "rh": 40}'),
                ("site/roof/humidity", b'{"rh": 41}'),  # matches neither filter
                ("site/roof/cellar/temperature", b"{}"),  # '+' is exactly one level
                ("tele/plug-1/power", b"12.5"),
                ("tele/plug-1/state/relay", b'"ON"'),
            ],
        )
        wait_for(lambda: len(runner.samples) >= 3, WAIT_S, "three readings")
    finally:
        runner.close()
    for sample in runner.samples:
        assert sample.sensor_type == "mqtt"
        assert_json_payload(sample.payload)
    assert runner.payloads == [
        {"c": 21.5, "rh": 40, "topic": "site/roof/temperature"},
        {"value": 12.5, "topic": "tele/plug-1/power"},
        {"value": "ON", "topic": "tele/plug-1/state/relay"},
    ]
    assert runner.error is None


def test_plain_payloads_go_to_value_field(broker: Mosquitto) -> None:
    driver = driver_for(broker.port, payload_format="plain", value_field="celsius")
    runner = subscribed(driver)
    try:
        publish(broker.port, [("sensors/a", b"21.5\n"), ("sensors/b", b"open")])
        wait_for(lambda: len(runner.samples) == 2, WAIT_S, "two readings")
    finally:
        runner.close()
    assert runner.payloads == [
        {"celsius": 21.5, "topic": "sensors/a"},
        {"celsius": "open", "topic": "sensors/b"},
    ]


def test_bad_messages_are_skipped_and_counted_and_the_stream_goes_on(broker: Mosquitto) -> None:
    driver = driver_for(broker.port, max_payload_bytes=64)
    runner = subscribed(driver)
    try:
        publish(
            broker.port,
            [
                ("sensors/x", b"not json"),
                ("sensors/x", b"[1, 2]"),
                ("sensors/x", b"\xff\xfe"),
                ("sensors/x", b'{"pad": "' + b"x" * 100 + b'"}'),  # over max_payload_bytes
                ("sensors/x", b'{"ok": 1}'),
            ],
        )
        wait_for(lambda: runner.samples, WAIT_S, "the good message")
    finally:
        runner.close()
    assert runner.payloads == [{"ok": 1, "topic": "sensors/x"}]
    assert driver.skipped == 4
    assert runner.error is None


def test_qos1_with_a_client_id_delivers_what_was_published_while_away(broker: Mosquitto) -> None:
    # The broker keeps the session of a client that set client_id: QoS 1 messages published
    # while the agent was disconnected are delivered when it comes back.
    kept = driver_for(broker.port, client_id="beam-node-kept")
    clean = driver_for(broker.port)  # a random id and a clean session
    for driver in (kept, clean):
        subscribed(driver).close()
    publish(broker.port, [("sensors/missed", b'{"n": 1}')])
    again_kept = subscribed(driver_for(broker.port, client_id="beam-node-kept"))
    again_clean = subscribed(driver_for(broker.port))
    try:
        wait_for(lambda: again_kept.samples, WAIT_S, "the missed message")
        publish(broker.port, [("sensors/live", b'{"n": 2}')])
        wait_for(lambda: len(again_clean.samples) == 1, WAIT_S, "the live message")
        wait_for(lambda: len(again_kept.samples) == 2, WAIT_S, "the live message, kept")
    finally:
        again_kept.close()
        again_clean.close()
    assert again_kept.payloads == [
        {"n": 1, "topic": "sensors/missed"},
        {"n": 2, "topic": "sensors/live"},
    ]
    assert again_clean.payloads == [{"n": 2, "topic": "sensors/live"}]


def test_retained_messages_are_read_unless_switched_off(broker: Mosquitto) -> None:
    publish(broker.port, [("sensors/last", b'{"v": 7}')], retain=True)
    assert [s.payload for s in driver_for(broker.port).read()] == [
        {"v": 7, "topic": "sensors/last"}
    ]
    skipping = driver_for(broker.port, retained=False, timeout_s=1.0)
    with pytest.raises(DriverError, match=r"no message on sensors/# from 127\.0\.0\.1:\d+"):
        skipping.read()


def test_read_once_waits_for_one_message(broker: Mosquitto) -> None:
    driver = driver_for(broker.port, timeout_s=10.0)
    timer = threading.Timer(0.5, publish, (broker.port, [("sensors/a", b"1"), ("sensors/a", b"2")]))
    timer.start()
    try:
        samples = driver.read()
    finally:
        timer.join()
    assert [s.payload for s in samples] == [{"value": 1, "topic": "sensors/a"}]
    assert driver.client is None  # read-once leaves no connection open


def test_an_unreachable_broker_is_a_driver_error(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # configured, never started: its port refuses
    with pytest.raises(DriverError, match=f"cannot connect to the broker 127.0.0.1:{broker.port}"):
        driver_for(broker.port).read()


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", users={USER: PASSWORD}) as running:
        yield running


def password_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mqtt.password"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_password_from_a_file_logs_in(password_broker: Mosquitto, tmp_path: Path) -> None:
    path = password_file(tmp_path, PASSWORD + "\nthe rest of the file is ignored\n")
    driver = driver_for(password_broker.port, username=USER, password_file=str(path))
    runner = subscribed(driver)
    try:
        publish(password_broker.port, [("sensors/a", b'{"a": 1}')], auth=(USER, PASSWORD))
        wait_for(lambda: runner.samples, WAIT_S, "a reading")
    finally:
        runner.close()
    assert runner.payloads == [{"a": 1, "topic": "sensors/a"}]


def test_a_wrong_password_or_none_is_refused_by_the_broker(
    password_broker: Mosquitto, tmp_path: Path
) -> None:
    wrong = password_file(tmp_path, "not-the-password\n")
    with pytest.raises(DriverError, match="refused the connection: Not authorized"):
        driver_for(password_broker.port, username=USER, password_file=str(wrong)).read()
    with pytest.raises(DriverError, match="refused the connection: Not authorized"):
        driver_for(password_broker.port).read()  # anonymous


def test_the_password_file_is_read_at_every_connect(
    password_broker: Mosquitto, tmp_path: Path
) -> None:
    path = password_file(tmp_path, "old-password\n")
    driver = driver_for(password_broker.port, username=USER, password_file=str(path), timeout_s=1)
    with pytest.raises(DriverError, match="Not authorized"):
        driver.read()
    path.write_text(PASSWORD + "\n")  # rotated: the same driver logs in on its next connect
    publish(password_broker.port, [("sensors/r", b"5")], retain=True, auth=(USER, PASSWORD))
    assert [s.payload for s in driver.read()] == [{"value": 5, "topic": "sensors/r"}]


@pytest.mark.parametrize("content", [None, "", "\nsecond line"])
def test_a_missing_or_empty_password_file_is_a_driver_error_naming_it(
    password_broker: Mosquitto, tmp_path: Path, content: Any
) -> None:
    path = tmp_path / "mqtt.password"
    if content is not None:
        path.write_text(content)
    driver = driver_for(password_broker.port, username=USER, password_file=str(path))
    with pytest.raises(DriverError, match=f"password_file '{path}'"):
        driver.read()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path, Path]]:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki, "mqtt test CA")
    other = make_ca(pki, "some other CA")
    certificate = issue_server_certificate(ca, pki, ["localhost", "127.0.0.1"])
    with Mosquitto(tmp_path / "broker", certificate=certificate) as running:
        yield running, ca.cert, other.cert


def test_tls_verified_against_the_ca_file(tls_broker: tuple[Mosquitto, Path, Path]) -> None:
    broker, ca, _ = tls_broker
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        driver = MqttDriver(
            {"host": host, "port": broker.port, "topics": ["sensors/#"], "ca_file": str(ca)}
        )
        runner = subscribed(driver)
        try:
            publish(broker.port, [("sensors/tls", b'{"secure": true}')], ca_file=ca)
            wait_for(lambda r=runner: r.samples, WAIT_S, "a reading over TLS")
        finally:
            runner.close()
        assert runner.payloads == [{"secure": True, "topic": "sensors/tls"}]


def test_tls_refuses_a_broker_from_another_ca(tls_broker: tuple[Mosquitto, Path, Path]) -> None:
    broker, _, other = tls_broker
    with pytest.raises(DriverError, match=r"TLS with the broker .* certificate verify failed"):
        driver_for(broker.port, ca_file=str(other)).read()


def test_tls_refuses_a_certificate_for_another_name(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "name CA")
    certificate = issue_server_certificate(ca, tmp_path, ["broker.example"], stem="elsewhere")
    with Mosquitto(tmp_path / "named", certificate=certificate) as named:
        driver = driver_for(named.port, ca_file=str(ca.cert))
        with pytest.raises(DriverError, match=r"TLS with the broker .*IP address mismatch"):
            driver.read()


def test_tls_against_a_plain_port_is_a_driver_error(broker: Mosquitto, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    # Mosquitto resets a connection whose first bytes are not MQTT (a TLS ClientHello).
    with pytest.raises(DriverError, match=r"broker 127\.0\.0\.1:\d+: .*does the port serve TLS"):
        driver_for(broker.port, ca_file=str(ca.cert), connect_timeout_s=3).read()


def test_the_scheduler_reconnects_with_back_off_when_the_broker_returns(
    broker: Mosquitto,
) -> None:
    sensor = SensorConfig(
        name="plugs",
        sensor_type="mqtt",
        driver_class=MqttDriver,
        options=MqttDriver.validate_options(
            {"host": "127.0.0.1", "port": broker.port, "topics": ["sensors/#"]}
        ),
    )
    readings: list[Reading] = []
    stop = threading.Event()
    worker = SensorWorker(sensor, "beamrider-0001", readings.append, stop)
    worker.thread.start()
    try:
        wait_for(lambda: worker.driver and worker.driver.subscribed, WAIT_S, "subscribed")
        publish(broker.port, [("sensors/a", b"1")])
        wait_for(lambda: len(readings) == 1, WAIT_S, "the first reading")
        broker.stop()
        wait_for(lambda: worker.snapshot()["errors"] >= 1, WAIT_S, "the lost connection")
        assert "127.0.0.1" in worker.snapshot()["last_error"]
        broker.start()  # the same port
        wait_for(lambda: worker.driver and worker.driver.subscribed, 90, "resubscribed")
        publish(broker.port, [("sensors/a", b"2")])
        wait_for(lambda: len(readings) == 2, WAIT_S, "a reading after the reconnect")
    finally:
        stop.set()
        worker.thread.join(WAIT_S)
    assert [r.payload["value"] for r in readings] == [1, 2]
    assert worker.snapshot()["consecutive_errors"] == 0  # a reading ends the back-off
    assert not worker.thread.is_alive()


def test_registered_with_documented_options() -> None:
    assert resolve_driver("mqtt") is MqttDriver
    assert MqttDriver.streaming and MqttDriver.description
    assert all(option.help for option in MqttDriver.options)


def test_defaults() -> None:
    options = MqttDriver.validate_options({"host": "broker", "topics": ["a/#"]})
    assert options == {
        "host": "broker",
        "port": 1883,
        "topics": ["a/#"],
        "qos": 1,
        "payload_format": "json",
        "value_field": "value",
        "topic_field": "topic",
        "retained": True,
        "client_id": "",
        "username": "",
        "password_file": "",
        "ca_file": "",
        "keepalive_s": 60,
        "connect_timeout_s": 10.0,
        "timeout_s": 10.0,
        "max_payload_bytes": 65536,
    }
    assert MqttDriver.validate_options(options) == options  # as the config loader does
    assert MqttDriver(options).config == options


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"topics": ["a"]}, "host"),
        ({"host": " ", "topics": ["a"]}, "host"),
        ({"host": "b"}, "topics"),
        ({"host": "b", "topics": "a/#"}, "topics"),
        ({"host": "b", "topics": []}, "topics"),
        ({"host": "b", "topics": ["a/#/b"]}, "topics"),
        ({"host": "b", "topics": ["a", 5]}, "topics"),
        ({"host": "b", "topics": ["a"], "qos": 3}, "qos"),
        ({"host": "b", "topics": ["a"], "port": 0}, "port"),
        ({"host": "b", "topics": ["a"], "payload_format": "xml"}, "payload_format"),
        ({"host": "b", "topics": ["a"], "value_field": ""}, "value_field"),
        ({"host": "b", "topics": ["a"], "password_file": "/p"}, "password_file"),
        ({"host": "b", "topics": ["a"], "username": "u", "password_file": "p"}, "password_file"),
        ({"host": "b", "topics": ["a"], "ca_file": "ca.crt"}, "ca_file"),
        ({"host": "b", "topics": ["a"], "keepalive_s": 1}, "keepalive_s"),
        ({"host": "b", "topics": ["a"], "tls": True}, "tls"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        MqttDriver.validate_options(raw)
    assert caught.value.key == key


def test_paho_is_imported_only_when_a_connection_is_made() -> None:
    # An agent without MQTT sensors, and check-config, never load the MQTT client.
    code = (
        "import sys; from beam_agent.drivers.mqtt import MqttDriver;"
        "MqttDriver({'host': 'b', 'topics': ['a/#']});"
        "print('paho' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_check_config_names_the_sensor_and_the_bad_topic(tmp_path: Path) -> None:
    config = write_agent_config(
        tmp_path,
        "http://127.0.0.1:9",
        [{"name": "plugs", "type": "mqtt", "host": "broker", "topics": ["ok/#", "tele/#/x"]}],
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.lines() == [
        f"{config}: sensor[0] (plugs).topics: item 1 '#' must be a whole level and the last "
        "one, got 'tele/#/x'"
    ]


def test_a_failed_connect_leaves_no_client_behind(password_broker: Mosquitto) -> None:
    driver = driver_for(password_broker.port)  # anonymous: refused
    with pytest.raises(DriverError, match="Not authorized"):
        driver.read()
    assert driver.client is None and not driver.subscribed

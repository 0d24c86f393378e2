"""Messages from an MQTT broker (paho-mqtt): each message on the subscribed topics becomes
one sample, e.g. from Tasmota or ESPHome devices, Zigbee2MQTT or a microcontroller's sketch.

Why a streaming driver on the sensor's own thread: paho's `loop()` runs here, so callbacks
(and so `emit`) run on this thread too, and a lost connection is a `DriverError` that the
scheduler answers like any stream's: it closes the client and reconnects after its back-off
(1 s doubling to 60 s), counting each failure in the sensor's errors. Subscriptions use QoS
1 by default; with a `client_id` the broker keeps the session, so QoS 1 messages published
while the agent was away are delivered when it reconnects. paho is imported only when a
connection is made, so an agent without MQTT sensors never loads it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from beam_agent.drivers.base import Driver, DriverError, Emit, Option, OptionError
from beam_agent.drivers.lines import SkipCounter
from beam_agent.drivers.mqtt_messages import PAYLOAD_FORMATS, check_topics, message_fields
from beam_agent.drivers.serial_port import POLL_INTERVAL_S
from beam_agent.reading import Sample

if TYPE_CHECKING:
    from paho.mqtt.client import Client, MQTTMessage


def read_password(path: Path) -> str:
    """The first line of the password file, read at every connect so a rotated one is used."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DriverError(f"password_file {str(path)!r}: cannot read it ({exc})") from None
    if not lines or not lines[0]:
        raise DriverError(f"password_file {str(path)!r}: its first line is empty")
    return lines[0]


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the broker's certificate and name against `ca_file`, as the push does."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise DriverError(f"ca_file {ca_file!r}: cannot load a CA certificate ({exc})") from None


class MqttDriver(Driver):
    type_name = "mqtt"
    description = (
        "Messages from an MQTT broker: wildcard subscriptions, JSON or plain payloads, "
        "QoS 1, TLS and a password file; one reading per message, reconnects with back-off."
    )
    streaming = True
    options = (
        Option("host", str, help="broker host name or address"),
        Option(
            "port", int, 1883, help="broker port (8883 is usual with TLS)", minimum=1, maximum=65535
        ),
        Option(
            "topics",
            list,
            help="topic filters to subscribe to; '+' matches one level, '#' the rest, "
            'e.g. ["sensors/+/temperature", "tele/#"]',
        ),
        Option("qos", int, 1, help="subscription QoS", choices=(0, 1, 2)),
        Option(
            "payload_format",
            str,
            "json",
            help="json: an object's keys become fields, a bare value goes to value_field; "
            "plain: the text (a number when it reads as one) goes to value_field",
            choices=PAYLOAD_FORMATS,
        ),
        Option("value_field", str, "value", help="the field of a plain or bare JSON value"),
        Option(
            "topic_field",
            str,
            "topic",
            help="the field that carries the message's topic; empty leaves it out",
        ),
        Option(
            "retained",
            bool,
            True,
            help="take retained messages (the broker's last value, sent on every subscribe)",
        ),
        Option(
            "client_id",
            str,
            "",
            help="empty: a random id and a clean session; set (unique per broker): the broker "
            "keeps the session and delivers QoS 1 messages missed while disconnected",
        ),
        Option("username", str, "", help="user name to log in with; empty: anonymous"),
        Option(
            "password_file",
            str,
            "",
            help="absolute path of a file whose first line is the password (needs username)",
        ),
        Option(
            "ca_file",
            str,
            "",
            help="absolute path of a PEM CA bundle: connect with TLS and verify the broker's "
            "certificate and name against it; empty: no TLS",
        ),
        Option("keepalive_s", int, 60, help="MQTT keep-alive", minimum=5, maximum=65535),
        Option(
            "connect_timeout_s",
            float,
            10.0,
            help="give up connecting (TCP, TLS and CONNACK) after this long",
            minimum=0.1,
            maximum=600,
        ),
        Option(
            "timeout_s",
            float,
            10.0,
            help="read-once waits this long for a message",
            minimum=0.01,
            maximum=3600,
        ),
        Option(
            "max_payload_bytes",
            int,
            65536,
            help="larger messages are skipped (counted and logged)",
            minimum=16,
            maximum=268_435_455,
        ),
    )

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        options = super().validate_options(raw)
        if not options["host"].strip():
            raise OptionError("host", "must not be empty")
        problem = check_topics(options["topics"])
        if problem:
            raise OptionError("topics", problem)
        if not options["value_field"]:
            raise OptionError("value_field", "must not be empty")
        for key in ("password_file", "ca_file"):
            if options[key] and not Path(options[key]).is_absolute():
                raise OptionError(key, f"must be an absolute path, got {options[key]!r}")
        if options["password_file"] and not options["username"]:
            raise OptionError("password_file", "needs username (a password without a user)")
        return options

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.host: str = self.config["host"]
        self.port: int = self.config["port"]
        self.topics: list[str] = list(self.config["topics"])
        self.endpoint = f"{self.host}:{self.port}"
        self.skip = SkipCounter(logging.getLogger(f"beam_agent.drivers.{self.type_name}"))
        self.client: Optional[Client] = None
        self.failure: Optional[str] = None  # set by a callback, raised by the loop
        self.subscribed = False
        self.received: list[Sample] = []

    @property
    def skipped(self) -> int:
        """Messages dropped so far: undecodable, not a usable payload, or too large."""
        return self.skip.count

    def stream(self, emit: Emit, stop: threading.Event) -> None:
        try:
            client = self._connect()
            while not stop.is_set():
                self._loop(client)
                for sample in self._take():
                    emit(sample)
        finally:
            self.close()

    def read(self) -> list[Sample]:
        deadline = time.monotonic() + self.config["timeout_s"]
        try:
            client = self._connect()
            while time.monotonic() < deadline:
                self._loop(client)
                samples = self._take()
                if samples:
                    return samples[:1]
        finally:
            self.close()
        topics = ", ".join(self.topics)
        raise DriverError(
            f"no message on {topics} from {self.endpoint} within {self.config['timeout_s']:g} s"
        )

    def close(self) -> None:
        client, self.client = self.client, None
        self.subscribed = False
        if client is not None:
            try:
                client.disconnect()
                client.loop(0)  # hand the DISCONNECT to the socket
            except Exception:  # closing a broken connection may fail in any way
                pass

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> Client:
        """A connected, subscribed client; DriverError says why there is none."""
        self.close()
        client = self._client()
        self.client = client
        timeout = self.config["connect_timeout_s"]
        deadline = time.monotonic() + timeout
        try:
            client.connect(self.host, self.port, keepalive=self.config["keepalive_s"])
        except ssl.SSLError as exc:
            raise DriverError(f"TLS with the broker {self.endpoint} failed: {exc}") from None
        except ConnectionResetError as exc:
            hint = " (does the port serve TLS?)" if self.config["ca_file"] else ""
            raise DriverError(
                f"cannot connect to the broker {self.endpoint}: {exc}{hint}"
            ) from None
        except (OSError, ValueError) as exc:
            raise DriverError(f"cannot connect to the broker {self.endpoint}: {exc}") from None
        while not self.subscribed:
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"the broker {self.endpoint} did not accept the connection and the "
                    f"subscriptions within {timeout:g} s"
                )
            self._loop(client, min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
        return client

    def _client(self) -> Client:
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion

        client_id: str = self.config["client_id"]
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not client_id,
            reconnect_on_failure=False,  # the scheduler reconnects, with its back-off
        )
        client.connect_timeout = self.config["connect_timeout_s"]
        if self.config["username"]:
            password = None
            if self.config["password_file"]:
                password = read_password(Path(self.config["password_file"]))
            client.username_pw_set(self.config["username"], password)
        if self.config["ca_file"]:
            client.tls_set_context(tls_context(self.config["ca_file"]))
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.failure = None
        self.subscribed = False
        self.received = []
        return client

    def _loop(self, client: Client, timeout: float = POLL_INTERVAL_S) -> None:
        """One round of paho's network loop; DriverError once the connection is gone."""
        try:
            result = client.loop(timeout)
        except ssl.SSLError as exc:
            raise DriverError(f"TLS with the broker {self.endpoint} failed: {exc}") from None
        except OSError as exc:
            raise DriverError(f"connection to the broker {self.endpoint} failed: {exc}") from None
        if self.failure is not None:
            raise DriverError(self.failure)
        if result != 0:
            from paho.mqtt.client import error_string

            raise DriverError(
                f"connection to the broker {self.endpoint} lost: {error_string(result)}"
            )

    def _take(self) -> list[Sample]:
        samples, self.received = self.received, []
        return samples

    # -- paho callbacks (they run inside `_loop`, on this sensor's thread) ---------------

    def _on_connect(
        self, client: Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.failure = f"the broker {self.endpoint} refused the connection: {reason}"
            return
        qos = self.config["qos"]
        client.subscribe([(topic, qos) for topic in self.topics])

    def _on_subscribe(
        self, client: Client, userdata: Any, mid: int, reasons: list[Any], properties: Any
    ) -> None:
        refused = [t for t, r in zip(self.topics, reasons) if r.is_failure]
        if refused:
            self.failure = f"the broker {self.endpoint} refused the subscription to " + ", ".join(
                refused
            )
            return
        self.subscribed = True

    def _on_disconnect(
        self, client: Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self.failure is None:
            self.failure = f"the broker {self.endpoint} closed the connection: {reason}"

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if message.retain and not self.config["retained"]:
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker should have refused it
            self.skip(self.endpoint, "a message whose topic is not UTF-8")
            return
        if len(message.payload) > self.config["max_payload_bytes"]:
            self.skip(topic, f"a message of {len(message.payload)} bytes is too large")
            return
        try:
            fields = message_fields(
                topic,
                message.payload,
                self.config["payload_format"],
                self.config["value_field"],
                self.config["topic_field"],
            )
        except (ValueError, RecursionError) as exc:  # also absurd nesting
            self.skip(topic, f"message {message.payload[:200]!r}: {exc}")
            return
        self.received.append(self.sample(fields))

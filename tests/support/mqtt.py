"""A real Mosquitto broker for tests: Debian's /usr/sbin/mosquitto with a config written to a
temporary directory, listening on a free loopback port, optionally with a password file
(made by mosquitto_passwd) and TLS (a certificate from tests.support.tls).

A missing broker is an error with a clear message, never a skip: `make unit` and
`make test-py39` install the Debian package `mosquitto` first. As root, Mosquitto would
drop to its own user, which cannot read pytest's private temporary directories, so the
config keeps the user it was started as.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from tests.support.processes import ChildProcess
from tests.support.tls import ServerCertificate
from tests.support.waiting import free_port, wait_for

MOSQUITTO = Path(os.environ.get("BEAM_MOSQUITTO", "/usr/sbin/mosquitto"))
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MISSING = (
    "{path} is missing: install Mosquitto (Debian: apt-get install mosquitto; `make unit` and "
    "`make test-py39` do it as root) or set BEAM_MOSQUITTO"
)


class Mosquitto:
    """One broker process; `start()` again after `stop()` brings it back on the same port."""

    def __init__(
        self,
        directory: Path,
        users: Optional[Mapping[str, str]] = None,
        certificate: Optional[ServerCertificate] = None,
    ) -> None:
        if not MOSQUITTO.is_file():
            raise RuntimeError(MISSING.format(path=MOSQUITTO))
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = ChildProcess(directory / "mosquitto.log")
        self.config = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence false",
            "log_dest stdout",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if users:
            lines.append(f"password_file {self._password_file(users)}")
        if certificate is not None:
            lines += [f"certfile {certificate.cert}", f"keyfile {certificate.key}"]
        self.config.write_text("\n".join(lines) + "\n")

    def _password_file(self, users: Mapping[str, str]) -> Path:
        path = self.directory / "passwords"
        path.write_text("")
        path.chmod(0o600)
        for user, password in users.items():
            if not Path(MOSQUITTO_PASSWD).is_file():
                raise RuntimeError(MISSING.format(path=MOSQUITTO_PASSWD))
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", str(path), user, password],
                check=True,
                capture_output=True,
                timeout=30,
            )
        return path

    def start(self) -> Mosquitto:
        self.process.spawn([str(MOSQUITTO), "-c", str(self.config)])
        wait_for(self._listening, 15, f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if not self.process.running:
            raise RuntimeError(f"mosquitto exited:\n{self.process.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def publish(
    port: int,
    messages: list[tuple[str, bytes]],
    *,
    qos: int = 1,
    retain: bool = False,
    auth: Optional[tuple[str, str]] = None,
    ca_file: Optional[Path] = None,
) -> None:
    """Publish (topic, payload) pairs with paho and wait until the broker has each (QoS 1:
    its PUBACK), so a subscriber that is connected is sure to be sent them."""
    import ssl

    from paho.mqtt.client import Client
    from paho.mqtt.enums import CallbackAPIVersion

    client = Client(CallbackAPIVersion.VERSION2)
    if auth is not None:
        client.username_pw_set(*auth)
    if ca_file is not None:
        client.tls_set_context(ssl.create_default_context(cafile=str(ca_file)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(10)
            assert info.is_published(), f"the broker did not take {topic!r}"
    finally:
        client.disconnect()
        client.loop_stop()
    time.sleep(0.05)  # the broker forwards asynchronously

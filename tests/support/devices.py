"""Real devices for driver tests: a pseudo-terminal that plays a serial sensor (and can be
unplugged and plugged back in), and a thread that runs a streaming driver."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from pathlib import Path
from typing import Callable, Optional

from beam_agent.drivers import Driver
from beam_agent.reading import Sample

from tests.support.waiting import poll_until

WAIT_S = 15.0  # generous: the machine running the tests may be busy


class FakeSerialDevice:
    """A pty pair whose slave end is reached through a stable symlink, like
    /dev/serial/by-id: `unplug` removes device and link, `plug_in` brings a new one."""

    def __init__(self, directory: Path, name: str = "ttyFAKE") -> None:
        self.path = directory / name
        self.master: Optional[int] = None
        self.slave: Optional[int] = None
        self.plug_in()

    @property
    def port(self) -> str:
        return str(self.path)

    def plug_in(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR translation: bytes arrive as written
        os.set_blocking(master, False)  # a driver that is not reading must not block a test
        self.master, self.slave = master, slave
        link = self.path.with_name(self.path.name + ".new")
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(slave))
        os.replace(link, self.path)

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def write(self, data: bytes) -> None:
        assert self.master is not None, "device is unplugged"
        # BlockingIOError: nobody reads the port yet and its buffer is full.
        with contextlib.suppress(BlockingIOError):
            os.write(self.master, data)

    def write_until(
        self, data: bytes, condition: Callable[[], bool], timeout: float = WAIT_S
    ) -> bool:
        """Keep writing `data` until `condition` holds: the driver flushes what arrived
        before it opened the port and skips the first partial line, so one write is not
        enough to know it is listening."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.write(data)
            if poll_until(condition, 0.1, interval=0.02):
                return True
        return condition()

    def close(self) -> None:
        self.unplug()


class StreamRunner:
    """Runs `driver.stream` on a thread, collecting samples and the exception it ended with."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.samples: list[Sample] = []
        self.error: Optional[BaseException] = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.driver.stream(self.samples.append, self.stop)
        except BaseException as exc:  # the test inspects whatever ended the stream
            self.error = exc

    @property
    def payloads(self) -> list[dict[str, object]]:
        return [sample.payload for sample in self.samples]

    def finished(self, timeout: float = WAIT_S) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)

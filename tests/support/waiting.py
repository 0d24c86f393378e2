"""Waiting for what another process or thread does, and a port for a server to listen on."""

from __future__ import annotations

import socket
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def poll_until(condition: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Ask `condition` until its answer is truthy or `timeout` seconds have passed, and
    return its last answer (falsy on a timeout). It is asked once more after the deadline,
    so a busy machine's last chance counts."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(interval)


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """`poll_until` that fails (AssertionError) on a timeout; returns the truthy answer.

    Timeouts are generous: the machine may be busy; no timing is asserted, only the outcome.
    """
    answer = poll_until(condition, timeout, interval)
    if not answer:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return answer

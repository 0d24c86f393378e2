"""TCP proxies on 127.0.0.1 that add a fixed delay each way: a slow link for benchmarks.

Why in user space: a fleet is Raspberry Pis on Wi-Fi or at a remote site (10-50 ms round
trips), the benchmark's containers are on a docker bridge (0.05 ms), and this machine's
kernel has no netem (CONFIG_NET_SCH_NETEM is not set). Every chunk read from one side is
written to the other `one_way_ms` later, in order, so each request/answer exchange over the
proxy (an SSH operation, a TCP handshake answered by the far side) costs one round trip of
2 x one_way_ms more. Bandwidth and loss are not modelled.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Optional

# The event loop holds tasks only weakly: a connection's tasks are kept here while they run.
_RUNNING: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy reader to writer, each chunk held until delay_s after it was read."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await pending.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = _keep(asyncio.create_task(send()))
    try:
        while True:
            data = await reader.read(65536)
            await pending.put((loop.time() + delay_s, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def _handle(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    delay_s: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pump(client_reader, server_writer, delay_s),
            _pump(server_reader, client_writer, delay_s),
        )
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


class DelayProxies:
    """One delaying proxy per target, served by an event loop in a daemon thread (which
    ends with the benchmark's process)."""

    def __init__(self, one_way_ms: float) -> None:
        self.delay_s = one_way_ms / 1000.0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.base_events.Server] = []  # held for the bench's lifetime

    def add(self, host: str, port: int) -> int:
        """Start a proxy to host:port; returns its port on 127.0.0.1."""

        async def start() -> int:
            def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                _keep(asyncio.ensure_future(_handle(r, w, (host, port), self.delay_s)))

            server = await asyncio.start_server(connected, "127.0.0.1", 0)
            self.servers.append(server)
            bound: int = server.sockets[0].getsockname()[1]
            return bound

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)


def banner_delay_ms(port: int, host: str = "127.0.0.1", tries: int = 5) -> Optional[float]:
    """Median time from connecting to the first byte from the far side (sshd's banner):
    one way through the proxy, so about one_way_ms; None when nothing answers."""
    samples = []
    for _ in range(tries):
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=10) as connection:
                if not connection.recv(1):
                    continue
        except OSError:
            continue
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)[len(samples) // 2] if samples else None

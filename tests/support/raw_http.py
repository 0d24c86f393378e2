"""Small loopback servers speaking raw HTTP/1.1, for what the receiver double cannot do: a
server that closes each kept-alive connection after one answer, one that answers with given
bytes, and a forward proxy (absolute URIs for http, CONNECT tunnels for https), all
recording what they saw."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Optional

OK_BODY = b'{"accepted":1,"duplicates":0}'


def read_request(stream: socket.SocketIO | object) -> Optional[tuple[str, dict[str, str], bytes]]:
    """One request from a buffered socket file: request line, header fields, body."""
    line = stream.readline()  # type: ignore[attr-defined]
    if not line:
        return None
    fields: dict[str, str] = {}
    while True:
        header = stream.readline()  # type: ignore[attr-defined]
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    body = stream.read(int(fields.get("content-length", "0")))  # type: ignore[attr-defined]
    return line.decode("latin-1").strip(), fields, body


def answer(status: int = 200, body: bytes = OK_BODY, close: bool = False) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "Connection: close\r\n" if close else ""
    return head.encode() + b"\r\n" + body


class LoopbackServer:
    """Accepts connections on 127.0.0.1 and serves each in a thread with `serve`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.request_lines: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.accept, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.listener.close()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.serve_safely, args=(conn,), daemon=True).start()

    def serve_safely(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def record(self, line: str, fields: dict[str, str]) -> None:
        with self.lock:
            self.request_lines.append(line)
            self.headers.append(fields)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class ClosingServer(LoopbackServer):
    """Answers one request per connection as if it kept it alive, then closes it, as a
    receiver (or a NAT, or a front) does with a connection that idled past its timeout."""

    def serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        request = read_request(stream)
        if request is not None:
            self.record(request[0], request[1])
            conn.sendall(answer())


class DroppingServer(LoopbackServer):
    """Reads a request and closes the connection without an answer."""

    def serve(self, conn: socket.socket) -> None:
        request = read_request(conn.makefile("rb"))
        if request is not None:
            self.record(request[0], request[1])


class ScriptedServer(LoopbackServer):
    """Answers the requests of each connection with `answers` in turn, as raw bytes (chunked,
    unframed, oversized or not HTTP at all), and closes the connection after the last."""

    def __init__(self, answers: list[bytes]) -> None:
        super().__init__()
        self.answers = answers

    def serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        for raw in self.answers:
            request = read_request(stream)
            if request is None:
                return
            self.record(request[0], request[1])
            conn.sendall(raw)


class ForwardProxy(LoopbackServer):
    """A forward proxy: answers absolute-URI requests itself (recording them) and tunnels
    CONNECT to the target."""

    def serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        while True:
            request = read_request(stream)
            if request is None:
                return
            line, fields, _ = request
            self.record(line, fields)
            if not line.startswith("CONNECT "):
                conn.sendall(answer())
                continue
            host, _, port = line.split()[1].rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pump = threading.Thread(target=relay, args=(upstream, conn), daemon=True)
            pump.start()
            relay(conn, upstream)
            pump.join(5)
            upstream.close()
            return


def relay(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)

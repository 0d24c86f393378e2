"""A fault-injecting stand-in for beam-receiver: a real HTTP/1.1 server on 127.0.0.1.

By default it behaves like the real receiver's ingest path: POST /api/readings takes one
reading or {"readings": [...]}, gzip-aware, all-or-nothing, stores each (device_id, seq) once
and answers {"accepted": n, "duplicates": d}; POST /api/telemetry and /api/nodes/register are
recorded and answered 200. Tests change that per request:

    with ReceiverDouble(max_readings_per_request=50) as receiver:
        receiver.script(Reply(503, headers={"Retry-After": "2"}), Reply(drop_connection=True,
                        store=True))     # the next two POSTs to /api/readings
        receiver.intercept(lambda request: Reply(400) if ... else None)   # any request
        receiver.fail_all(503)           # every request until receiver.recover()
        ... receiver.url, receiver.stored_seqs("beamrider-0001"), receiver.requests()

Every request is recorded (headers, body as sent and decoded, JSON), answered or not.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sys
import threading
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

READINGS = "/api/readings"
JSON_ENDPOINTS = ("/api/telemetry", "/api/nodes/register")
READING_FIELDS = {
    "device_id": str,
    "sensor": str,
    "sensor_type": str,
    "payload": dict,
    "timestamp": str,
    "seq": int,
}


@dataclass(frozen=True)
class Reply:
    """A programmed answer. `body` None means the usual body for the status (the ingest
    answer for a 2xx after `store`, else a contract error object); bytes and str are sent
    verbatim, anything else as JSON. `drop_connection` reads the request and closes the
    socket without a word; `store` first stores the readings as the default path would."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    store: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case
    raw_body: bytes  # as it came over the wire (maybe gzip)
    body: bytes  # after Content-Encoding
    json: Any  # the decoded document, or None when the body was not JSON
    status: Optional[int] = None  # what it was answered; None while pending or if dropped

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


Interceptor = Callable[[RecordedRequest], Optional[Reply]]


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-answer are what several tests are about, not noise to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class ReceiverDouble:
    def __init__(
        self,
        token: Optional[str] = None,
        max_readings_per_request: Optional[int] = None,
        max_body_bytes: Optional[int] = None,
    ) -> None:
        """`token`: when set, requests must carry it as a Bearer token (else 401) and may only
        send readings of the device named in X-Beam-Device (else 403)."""
        self.token = token
        self.max_readings_per_request = max_readings_per_request
        self.max_body_bytes = max_body_bytes
        self.lock = threading.Lock()
        self.recorded: list[RecordedRequest] = []
        self.store: dict[tuple[str, int], dict[str, Any]] = {}
        self.receipts: Counter[tuple[str, int]] = Counter()
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.interceptor: Optional[Interceptor] = None
        self.failure: Optional[Reply] = None
        self.connections: set[socket.socket] = set()
        self.server = QuietServer(("127.0.0.1", 0), make_handler(self))
        self.server.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    # -- life cycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ReceiverDouble:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(10)
            self.thread = None
        self.server.server_close()
        with self.lock:
            open_connections = list(self.connections)
        for connection in open_connections:  # wake keep-alive handlers blocked on a read
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ReceiverDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- programming ---------------------------------------------------------------------

    def script(self, *replies: Reply, path: str = READINGS) -> None:
        """Answer the next requests to `path` with these, in order, then go back to normal."""
        with self.lock:
            self.scripts[path].extend(replies)

    def intercept(self, interceptor: Optional[Interceptor]) -> None:
        """Ask `interceptor` about every request (after scripts); None means the default."""
        with self.lock:
            self.interceptor = interceptor

    def fail_all(self, status: int, retry_after: Optional[Union[int, str]] = None) -> None:
        """Answer every request with `status` until `recover()`."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self.lock:
            self.failure = Reply(status, headers=headers)

    def recover(self) -> None:
        with self.lock:
            self.failure = None

    # -- inspection ----------------------------------------------------------------------

    def requests(self, path: Optional[str] = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.recorded if path is None or r.path == path]

    def requests_to(self, path: str) -> list[Any]:
        """The JSON documents POSTed to `path`, in arrival order."""
        return [r.json for r in self.requests(path)]

    def stored_count(self) -> int:
        with self.lock:
            return len(self.store)

    def stored_seqs(self, device_id: str) -> set[int]:
        with self.lock:
            return {seq for device, seq in self.store if device == device_id}

    def stored_readings(self, device_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Stored readings in (device_id, seq) order."""
        with self.lock:
            return [
                self.store[key]
                for key in sorted(self.store)
                if device_id is None or key[0] == device_id
            ]

    def receipt_counts(self) -> Counter[tuple[str, int]]:
        """How many times each (device_id, seq) arrived in a request that was processed."""
        with self.lock:
            return Counter(self.receipts)

    # -- behaviour -----------------------------------------------------------------------

    def choose_reply(self, request: RecordedRequest) -> Optional[Reply]:
        with self.lock:
            script = self.scripts.get(request.path)
            if script:
                return script.popleft()
            interceptor, failure = self.interceptor, self.failure
        if interceptor is not None:
            reply = interceptor(request)
            if reply is not None:
                return reply
        return failure

    def default_answer(self, request: RecordedRequest) -> Answer:
        """What the real receiver would answer (the subset agents meet)."""
        if request.method == "GET" and request.path == "/healthz":
            return Answer(200, {"status": "ok"})
        if request.method != "POST" or request.path not in (READINGS, *JSON_ENDPOINTS):
            return error(404, "not_found", f"no route {request.method} {request.path}")
        if self.token is not None and request.header("Authorization") != f"Bearer {self.token}":
            return error(401, "unauthorized", "missing or unknown device token")
        if self.max_body_bytes is not None and len(request.raw_body) > self.max_body_bytes:
            return error(413, "too_large", f"body over {self.max_body_bytes} bytes")
        if (request.header("Content-Type") or "").split(";")[0].strip() != "application/json":
            return error(415, "unsupported_media_type", "send application/json")
        if request.json is None:
            return error(400, "invalid_json", "the body is not JSON")
        if request.path != READINGS:
            if not isinstance(request.json, dict):
                return error(400, "invalid_body", "expected a JSON object")
            return Answer(200, {"status": "ok"})
        return self.ingest(request)

    def ingest(self, request: RecordedRequest) -> Answer:
        document = request.json
        batch = document.get("readings") if isinstance(document, dict) else None
        readings = batch if isinstance(batch, list) else [document]
        if (
            self.max_readings_per_request is not None
            and len(readings) > self.max_readings_per_request
        ):
            return error(413, "too_large", f"over {self.max_readings_per_request} readings")
        problems = [
            {"index": index, "field": name, "problem": f"must be {kind.__name__}"}
            for index, reading in enumerate(readings)
            for name, kind in READING_FIELDS.items()
            if not isinstance(reading, dict) or not isinstance(reading.get(name), kind)
        ]
        if problems:
            return error(400, "invalid_body", "invalid readings; nothing stored", problems)
        device = request.header("X-Beam-Device")
        if self.token is not None and any(r["device_id"] != device for r in readings):
            return error(403, "forbidden", f"token of {device} cannot write other devices")
        accepted = duplicates = 0
        with self.lock:
            for reading in readings:
                key = (reading["device_id"], reading["seq"])
                self.receipts[key] += 1
                if key in self.store:
                    duplicates += 1
                else:
                    self.store[key] = reading
                    accepted += 1
        return Answer(200, {"accepted": accepted, "duplicates": duplicates})

    def answer(self, request: RecordedRequest) -> Optional[Answer]:
        """The answer to send, or None to drop the connection."""
        reply = self.choose_reply(request)
        if reply is None:
            return self.default_answer(request)
        stored = self.default_answer(request) if reply.store else None
        if reply.drop_connection:
            return None
        body = reply.body
        if body is None:
            if stored is not None and 200 <= reply.status < 300:
                body = stored.body
            elif reply.status >= 400:
                body = {"error": f"http_{reply.status}", "message": "programmed failure"}
            else:
                body = {}
        return Answer(reply.status, body, reply.headers)


def error(status: int, code: str, message: str, details: Optional[list[Any]] = None) -> Answer:
    return Answer(status, {"error": code, "message": message, "details": details or []})


def decode_body(raw: bytes, encoding: Optional[str]) -> Optional[bytes]:
    if (encoding or "").strip().lower() == "gzip":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return None
    return raw


def make_handler(double: ReceiverDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the agent's session expects
        timeout = 60

        def setup(self) -> None:
            super().setup()
            with double.lock:
                double.connections.add(self.connection)

        def finish(self) -> None:
            with double.lock:
                double.connections.discard(self.connection)
            with contextlib.suppress(OSError):  # the peer may be gone already
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read `requests()`, not a log

        def do_GET(self) -> None:
            self.handle_request()

        def do_POST(self) -> None:
            self.handle_request()

        def handle_request(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = decode_body(raw, self.headers.get("Content-Encoding"))
            document = None
            if body:
                try:
                    document = json.loads(body)
                except ValueError:
                    document = None
            parts = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={name.lower(): value for name, value in self.headers.items()},
                raw_body=raw,
                body=body if body is not None else b"",
                json=document,
            )
            with double.lock:
                double.recorded.append(request)
            if body is None:
                answer: Optional[Answer] = error(400, "invalid_encoding", "bad gzip body")
            else:
                answer = double.answer(request)
            if answer is None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            request.status = answer.status
            self.send(answer)

        def send(self, answer: Answer) -> None:
            if isinstance(answer.body, bytes):
                payload, content_type = answer.body, "application/octet-stream"
            elif isinstance(answer.body, str):
                payload, content_type = answer.body.encode(), "text/html; charset=utf-8"
            else:
                payload, content_type = json.dumps(answer.body).encode(), "application/json"
            self.send_response(answer.status)
            headers = {"Content-Type": content_type, **answer.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler

"""Delivery of queued readings to the receiver, with the contract's retry policy.

The answer to every request is classified once (`PushOutcome`), and everything else follows
from the class: 2xx acknowledges the batch, 413 splits it, another 4xx parks it in the dead
letters, and 429, 5xx, network errors and TLS failures (a receiver certificate this node does
not trust) leave it queued for a later attempt after a capped, jittered exponential back-off.
Readings are acknowledged only after a 2xx, so a crash or a lost answer means a reading is
sent again (the receiver stores it once), never lost.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import gzip
import json
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import unquote, urlsplit

import h11

if TYPE_CHECKING:  # imported when an https receiver or a proxy needs it, not at start
    import ssl

from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading, utc_now

log = logging.getLogger(__name__)

READINGS_PATH = "/api/readings"
MAX_RESPONSE_BYTES = 64 * 1024  # an answer is a small JSON object; an error page may be big
MAX_RETRY_AFTER_S = 3600.0  # a far-future HTTP date must not park the agent for days
BACKOFF_CHECK_S = 1.0  # how often a waiting pusher looks whether a heartbeat got through
# How often an idle pusher (nothing queued) looks at `stop` when nobody wakes it; readings
# and a stopping runner wake it at once (ReadingQueue.arrived).
IDLE_CHECK_S = 5.0
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")  # what an HTTP header value can carry verbatim


class OutcomeKind(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    TOO_LARGE = "too_large"
    AUTH = "auth"
    REJECTED = "rejected"
    TLS = "tls"
    CONFIG = "config"


# Answers that say the agent is knocking at the wrong door, not that the readings are bad:
# no such endpoint there (404), not this method (405), go elsewhere (3xx).
CONFIG_STATUSES = frozenset((404, 405))


@dataclass(frozen=True)
class PushOutcome:
    """What one request's answer means for the readings in it.

    `auth` (401 and 403) is retried with back-off like `retry` and is NOT dead-lettered, a
    deliberate extension of the contract (which parks every other 4xx): a token that was
    rotated on one side first, or not deployed yet, must not park the whole backlog.
    408 (request timeout) is retried too: it says nothing about the readings themselves.
    `tls` (no answer: the receiver's certificate was not trusted, or the handshake failed) is
    retried like a network error; its message says what to fix on which side.
    `config` (3xx, 404, 405: api_url does not lead to the receiver's endpoints) is retried
    too and NOT dead-lettered, like `auth`: the readings are fine, the address is wrong, and
    once it is fixed they must flow without anyone resending them. `status` and the
    heartbeat show it as a configuration error.
    """

    kind: OutcomeKind
    status: Optional[int]
    message: str
    accepted: Optional[int] = None
    duplicates: int = 0
    retry_after: Optional[float] = None

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.OK

    @property
    def retryable(self) -> bool:
        return self.kind in (
            OutcomeKind.RETRY,
            OutcomeKind.AUTH,
            OutcomeKind.TLS,
            OutcomeKind.CONFIG,
        )


def parse_retry_after(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None if absent or junk."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime  # about 2 MiB: only for a date

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):  # Python 3.9 raises TypeError on junk
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or utc_now())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_message(status: int, content: bytes) -> str:
    """A one-line description of an error answer, from the contract's error body if any."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error" in body or "message" in body):
        text = " ".join(str(body[key]) for key in ("error", "message") if body.get(key))
        if body.get("details"):
            text += f" {json.dumps(body['details'], default=str)}"
    else:
        text = content.decode("utf-8", "replace").strip()
        text = " ".join(text.split()) or "(empty body)"
    return f"HTTP {status}: {text[:500]}"


def count_field(body: Any, key: str) -> Optional[int]:
    value = body.get(key) if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def classify(status: int, headers: Any, content: bytes, url: str = "") -> PushOutcome:
    """The contract's status codes mapped to what the agent does next; `url` (what was
    posted to) goes into a configuration error's message."""
    if 200 <= status < 300:
        try:
            body = json.loads(content)
        except ValueError:  # a garbage 2xx still means stored: acknowledge, count no duplicates
            body = None
        return PushOutcome(
            OutcomeKind.OK,
            status,
            f"HTTP {status}",
            accepted=count_field(body, "accepted"),
            duplicates=count_field(body, "duplicates") or 0,
        )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    message = error_message(status, content)
    where = f" for {url}" if url else ""
    if 300 <= status < 400:
        location = headers.get("Location", "?")
        return PushOutcome(
            OutcomeKind.CONFIG,
            status,
            f"HTTP {status}{where}: redirected to {location}; "
            "api_url should be the receiver itself",
            retry_after=retry_after,
        )
    if status in CONFIG_STATUSES:
        return PushOutcome(
            OutcomeKind.CONFIG,
            status,
            f"{message}{where}: no receiver endpoint there; api_url must be the receiver's base "
            "URL (https://HOST[:PORT], the agent appends /api/...): fix api_url",
            retry_after=retry_after,
        )
    if status in (401, 403):
        return PushOutcome(OutcomeKind.AUTH, status, message, retry_after=retry_after)
    if status == 413:
        return PushOutcome(OutcomeKind.TOO_LARGE, status, message)
    if status in (408, 429) or status >= 500 or status < 200:
        return PushOutcome(OutcomeKind.RETRY, status, message, retry_after=retry_after)
    return PushOutcome(OutcomeKind.REJECTED, status, message)


def network_failure(exc: OSError, timeout_s: float, ca_file: Optional[Path] = None) -> PushOutcome:
    """A request that got no answer: `tls` when TLS refused the receiver, else `retry`."""
    timed_out = isinstance(exc, (socket.timeout, TimeoutError))
    problem = None if timed_out else tls_problem(exc, ca_file)
    if problem is not None:
        return PushOutcome(OutcomeKind.TLS, None, f"TLS: {problem}")
    if timed_out:
        text = f"no answer within {timeout_s:g} s ({type(exc).__name__})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return PushOutcome(OutcomeKind.RETRY, None, f"network error: {text[:500]}")


# OpenSSL's X509_V_ERR_* codes that say more than "not trusted".
X509_CERT_NOT_YET_VALID = 9
X509_CERT_HAS_EXPIRED = 10
X509_HOSTNAME_MISMATCH = 62
X509_IP_ADDRESS_MISMATCH = 64


def tls_problem(exc: BaseException, ca_file: Optional[Path]) -> Optional[str]:
    """What TLS refused and what to fix, or None when `exc` is no TLS failure.

    Stable for a given cause (no ports, object ids or source lines), so the pusher logs a
    TLS problem once, not on every retry.
    """
    if isinstance(exc, CaFileError):
        return f"cannot read ca_file {exc.path} ({exc.cause}); put the fleet CA's certificate there"
    if "ssl" not in sys.modules:  # nothing imported ssl, so nothing raised an ssl.SSLError
        return None
    import ssl

    cause = ssl_error_in(exc)
    if cause is None:
        return None
    trusted = f"the CA in ca_file {ca_file}" if ca_file is not None else "the default CA bundle"
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = getattr(cause, "verify_code", None)
        detail = ssl_words(cause)
        # OpenSSL's codes; "doesn't match" is urllib3's words when it checks the name itself
        if code in (X509_HOSTNAME_MISMATCH, X509_IP_ADDRESS_MISMATCH) or "doesn't match" in detail:
            return (
                f"the receiver's certificate does not name the host in api_url ({detail}); "
                "use a host name or address the certificate was issued for in api_url, "
                "or issue the receiver a certificate for that name"
            )
        if code in (X509_CERT_HAS_EXPIRED, X509_CERT_NOT_YET_VALID):
            return (
                f"the receiver's certificate is outside its validity period ({detail}); "
                "renew it on the receiver, or set this node's clock right"
            )
        fix = (
            "ca_file must hold the CA that signed the receiver's certificate (the fleet CA)"
            if ca_file is not None
            else "set ca_file to the CA that signed the receiver's certificate (the fleet CA)"
        )
        return f"the receiver's certificate is not trusted by {trusted} ({detail}); {fix}"
    reason = ssl_words(cause)
    if getattr(cause, "library", None) in ("X509", "PEM", "ASN1"):  # loading the CA file
        return f"{trusted} holds no usable certificate ({reason}); it must be a PEM CA bundle"
    if reason == "WRONG_VERSION_NUMBER":
        return f"no TLS handshake ({reason}); does api_url's port serve HTTPS, not plain HTTP?"
    return f"the TLS handshake with the receiver failed ({reason})"


def ssl_words(error: ssl.SSLError) -> str:
    """OpenSSL's words for `error`; one raised in Python has only its args."""
    for name in ("verify_message", "reason"):
        text = getattr(error, name, None)
        if text:
            return str(text)
    return str(error.args[-1]) if error.args else type(error).__name__


def ssl_error_in(exc: BaseException) -> Optional[ssl.SSLError]:
    """The ssl.SSLError that is `exc` or caused it, if any."""
    import ssl

    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        pending += [*current.args, getattr(current, "reason", None)]
        pending += [current.__cause__, current.__context__]
    return None


class CaFileError(OSError):
    """ca_file could not be read when a connection was set up (it is read for each one)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(f"cannot read ca_file {path}: {cause}")
        self.path = path
        self.cause = cause


class ReceiverDisconnected(ConnectionError):
    """The connection closed before an answer's status line arrived."""


def tls_context(ca_file: Optional[Path]) -> ssl.SSLContext:
    """Verification against ca_file, or the default CA store; ssl is imported here, so an
    agent with an http:// receiver never loads OpenSSL."""
    import ssl

    context = ssl.create_default_context()
    if ca_file is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # ca_file only, not also the defaults
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except ssl.SSLError:
            raise
        except OSError as exc:
            raise CaFileError(ca_file, exc) from exc
    return context


def proxy_for(scheme: str, host: str) -> Optional[str]:
    """The proxy URL the environment names for `scheme` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY),
    unless NO_PROXY exempts `host`; as requests did. urllib.request is imported only when a
    proxy variable is set at all."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not url or bypass(host, proxies):
        return None
    return url if "://" in url else f"http://{url}"


def lookup_name(host: str) -> str | bytes:
    """`host` as getaddrinfo should get it: an ASCII name as bytes, because a str makes the
    socket module load the idna codec, with stringprep and unicodedata, for good."""
    return host.encode("ascii") if host.isascii() else host


class Headers(dict):  # type: ignore[type-arg]
    """An answer's header fields; names are looked up in any case."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Answer:
    status: int
    headers: Headers
    content: bytes
    keep_alive: bool


class Connection:
    """One HTTP/1.1 connection to the receiver, directly or through a proxy (absolute URIs
    for http, a CONNECT tunnel for https). The protocol is h11's (framing, chunked bodies,
    keep-alive rules); this class owns only the socket. Not http.client: it imports ssl, and
    with it OpenSSL (about 4 MiB resident), even for an http:// receiver."""

    def __init__(
        self, scheme: str, host: str, port: int, timeout_s: float, ca_file: Optional[Path]
    ) -> None:
        self.requests = 0
        self.proxy_auth: Optional[str] = None
        proxy = proxy_for(scheme, host)
        self.via_proxy = proxy is not None and scheme == "http"
        if proxy is None:
            address = (host, port)
        else:
            parts = urlsplit(proxy)
            address = (parts.hostname or "", parts.port or 80)
            if parts.username is not None:
                user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                self.proxy_auth = "Basic " + base64.b64encode(user.encode()).decode("ascii")
        context = tls_context(ca_file) if scheme == "https" else None  # before connecting
        self.sock = socket.create_connection(
            (lookup_name(address[0]), address[1]),  # type: ignore[arg-type]
            timeout=timeout_s,
        )
        self.http = h11.Connection(h11.CLIENT)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and scheme == "https":
                self.tunnel(host, port)
            if context is not None:
                self.sock = context.wrap_socket(self.sock, server_hostname=host)
        except BaseException:
            self.close()
            raise

    def tunnel(self, host: str, port: int) -> None:
        """CONNECT through the proxy; TLS then runs end to end inside the tunnel."""
        target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        headers = [("Host", target)]
        if self.proxy_auth is not None:
            headers.append(("Proxy-Authorization", self.proxy_auth))
        answer = self.exchange(h11.Request(method="CONNECT", target=target, headers=headers))
        if answer.status != 200:
            raise OSError(f"the proxy refused to connect to {target}: HTTP {answer.status}")
        self.http = h11.Connection(h11.CLIENT)  # the tunnel is a new byte stream

    def request(self, target: str, headers: dict[str, str], body: bytes, limit: int) -> Answer:
        self.requests += 1
        fields = list(headers.items())
        if self.via_proxy and self.proxy_auth is not None:
            fields.append(("Proxy-Authorization", self.proxy_auth))
        return self.exchange(h11.Request(method="POST", target=target, headers=fields), body, limit)

    def exchange(self, request: h11.Request, body: bytes = b"", limit: int = 0) -> Answer:
        """Send `request` with `body`, and read the answer's status, fields and at most
        `limit` bytes of its content. A protocol error (a garbled answer) is a
        ConnectionError, like any other broken connection."""
        try:
            out = self.http.send(request) or b""
            if body:
                out += self.http.send(h11.Data(data=body)) or b""
            self.sock.sendall(out + (self.http.send(h11.EndOfMessage()) or b""))
            return self.read_answer(limit)
        except h11.ProtocolError as exc:
            raise ConnectionError(f"a garbled answer: {exc}") from exc

    def read_answer(self, limit: int) -> Answer:
        status: Optional[int] = None
        fields = Headers()
        chunks: list[bytes] = []
        size = 0
        received = 0
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                received += len(data)
                if not received:  # closed before a byte of an answer: maybe never read
                    raise ReceiverDisconnected(
                        "the receiver closed the connection without an answer"
                    )
                self.http.receive_data(data)  # b"" (closed) ends an unframed body
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key, text = name.decode("latin-1"), value.decode("latin-1")
                    fields[key] = f"{fields[key]}, {text}" if key in fields else text
                if self.http.their_state is h11.SWITCHED_PROTOCOL:  # a CONNECT tunnel is up
                    return Answer(status, fields, b"", False)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                chunks.append(event.data)
                if size > limit:  # too big to be the receiver's answer: stop, and close
                    return Answer(status or 0, fields, b"".join(chunks)[:limit], False)
            elif isinstance(event, h11.EndOfMessage):
                assert status is not None
                keep_alive = self.http.our_state is h11.DONE and self.http.their_state is h11.DONE
                if keep_alive:
                    self.http.start_next_cycle()
                return Answer(status, fields, b"".join(chunks), keep_alive)
            elif not isinstance(event, h11.InformationalResponse):  # ConnectionClosed, PAUSED
                raise ReceiverDisconnected(f"the connection ended in the answer: {event!r}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ReceiverClient:
    """HTTP to one receiver over a kept-alive connection; never retries by itself (the
    retry policy is `drain`'s and `Pusher`'s), except once on a fresh connection when a
    kept-alive one turns out closed, and never logs the token."""

    def __init__(
        self,
        api_url: str,
        device_id: str,
        token: Callable[[], str],
        timeout_s: float,
        agent_version: str,
        gzip_min_bytes: int = 1024,
        *,
        ca_file: Optional[Path] = None,
    ) -> None:
        """`ca_file`: a PEM bundle to verify an https receiver against instead of the default
        CA store; it is read for each new connection, so a corrected file is picked up."""
        self.api_url = api_url.rstrip("/")
        parts = urlsplit(self.api_url)
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url must be http:// or https://HOST[:PORT], not {api_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.base_path = parts.path
        self.device_id = device_id
        self.token = token
        self.timeout_s = timeout_s
        self.gzip_min_bytes = gzip_min_bytes
        self.ca_file = ca_file
        self.connection: Optional[Connection] = None
        self.lock = threading.Lock()  # the pusher and the heartbeat share the client
        self.headers = {
            "Host": self.netloc,
            "User-Agent": f"beam-agent/{agent_version}",
            "Accept-Encoding": "gzip, deflate",
            "Accept": "application/json",
            "Connection": "keep-alive",
            "X-Beam-Device": device_id,
            "X-Beam-Agent-Version": agent_version,
            "Content-Type": "application/json",
        }

    def post_readings(self, readings: Sequence[Reading]) -> PushOutcome:
        return self.post_json(READINGS_PATH, {"readings": [r.to_dict() for r in readings]})

    def post_json(self, path: str, body: dict[str, Any]) -> PushOutcome:
        """POST a JSON document to `path` under api_url; every failure becomes an outcome."""
        data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
        headers = dict(self.headers)
        if len(data) >= self.gzip_min_bytes:
            data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            token = self.token()
        except Exception as exc:  # a token file not deployed yet is an auth problem, retried
            return PushOutcome(
                OutcomeKind.AUTH, None, f"cannot read the device token: {type(exc).__name__}"
            )
        if not TOKEN_PATTERN.fullmatch(token):
            problem = "empty" if not token else "not a single printable ASCII word"
            return PushOutcome(OutcomeKind.AUTH, None, f"device token is {problem}")
        headers["Authorization"] = f"Bearer {token}"
        headers["Content-Length"] = str(len(data))
        url = self.api_url + path
        try:
            with self.lock:
                answer = self.exchange(path, headers, data)
        except OSError as exc:
            outcome = network_failure(exc, self.timeout_s, self.ca_file)
            log.debug("POST %s failed: %s", url, outcome.message)
            return outcome
        content = answer.content
        encoding = answer.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            # a body that does not unpack: classify says what it can from the raw bytes
            with contextlib.suppress(OSError, EOFError, ValueError):
                content = unpack_bounded(content, encoding, MAX_RESPONSE_BYTES)
        outcome = classify(answer.status, answer.headers, content, url)
        log.debug("POST %s (%d bytes) -> %s", url, len(data), outcome.message)
        return outcome

    def exchange(self, path: str, headers: dict[str, str], data: bytes) -> Answer:
        """One request and its answer. A kept-alive connection the receiver (or something
        between) has closed in the meantime shows only when it is used: then the request is
        sent once more on a fresh connection. That is safe: a reading sent twice is stored
        once (the receiver keys readings by device and seq), a heartbeat twice is harmless."""
        target = self.base_path + path
        if self.scheme == "http" and proxy_for("http", self.host) is not None:
            target = f"http://{self.netloc}{target}"
        for attempt in (1, 2):
            reused = self.connection is not None
            if self.connection is None:
                self.connection = Connection(
                    self.scheme, self.host, self.port, self.timeout_s, self.ca_file
                )
            connection = self.connection
            try:
                answer = connection.request(target, headers, data, MAX_RESPONSE_BYTES)
            except (ReceiverDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.drop_connection()
                if reused and attempt == 1:
                    log.debug("kept-alive connection closed (%s); sending again", exc)
                    continue
                raise
            except BaseException:
                self.drop_connection()
                raise
            if not answer.keep_alive:
                self.drop_connection()
            return answer
        raise AssertionError("unreachable")

    def drop_connection(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def close(self) -> None:
        with self.lock:
            self.drop_connection()


def unpack_bounded(data: bytes, encoding: str, limit: int) -> bytes:
    """A gzip- or deflate-encoded body, unpacked to at most `limit` bytes."""
    import zlib

    window = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    return zlib.decompressobj(window).decompress(data, limit)


class Backoff:
    """Capped exponential back-off with full jitter: after the n-th failure in a row, wait a
    uniformly random time in [0, min(cap, base * 2**n)), so a fleet coming back after an
    outage does not knock on the receiver in step, but at least what Retry-After asked."""

    def __init__(
        self,
        base_s: float = 1.0,
        cap_s: float = 300.0,
        random_fn: Callable[[], float] = random.random,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.random_fn = random_fn
        self.failures = 0

    def next_delay(self, retry_after: Optional[float] = None) -> float:
        ceiling = min(self.cap_s, self.base_s * float(2 ** min(self.failures, 62)))
        self.failures += 1
        delay = self.random_fn() * ceiling
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass
class DrainResult:
    """What one `drain` did; `failure` is set when it stopped on a retryable answer."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    requests: int = 0
    last_status: Optional[int] = None
    failure: Optional[PushOutcome] = None
    batch_limit: int = 0
    rejections: Optional[str] = None

    @property
    def retry_after(self) -> Optional[float]:
        return self.failure.retry_after if self.failure else None

    def summary(self) -> str:
        if self.failure is not None:
            text = self.failure.message
            if self.sent:
                text += f" (after delivering {self.sent})"
            return text
        text = f"HTTP {self.last_status}: delivered {self.sent} ({self.duplicates} duplicates)"
        if self.dead_lettered:
            text += f"; dead-lettered {self.dead_lettered}: {self.rejections}"
        return text


def drain(
    queue: ReadingQueue,
    client: ReceiverClient,
    batch_size: int,
    stop: Optional[threading.Event] = None,
) -> DrainResult:
    """Push leased batches until the queue is empty, a retryable failure, or `stop`.

    A batch shorter than asked means the queue is empty for now: the next push waits for the
    interval so readings arriving one by one still travel in batches. Only one batch is held
    at a time, however long the receiver has been away.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    result = DrainResult(batch_limit=batch_size)
    while stop is None or not stop.is_set():
        limit = result.batch_limit
        batch = queue.lease(limit)
        if not batch:
            break
        deliver(queue, client, batch, result)
        if result.failure is not None or len(batch) < limit:
            break
    if result.requests:
        ok = result.failure is None and not result.dead_lettered
        failure = result.failure.kind.value if result.failure is not None else None
        queue.record_push_result(ok, result.summary(), utc_now(), failure, result.last_status)
    return result


def deliver(
    queue: ReadingQueue, client: ReceiverClient, batch: Sequence[Reading], result: DrainResult
) -> None:
    """Send one batch and act on the answer; a 413 splits it in halves, recursively."""
    outcome = client.post_readings(batch)
    result.requests += 1
    result.last_status = outcome.status
    seqs = [reading.seq for reading in batch if reading.seq is not None]
    if outcome.ok:
        queue.ack(seqs, outcome.duplicates)
        result.sent += len(batch)
        result.duplicates += outcome.duplicates
        result.accepted += (
            outcome.accepted if outcome.accepted is not None else len(batch) - outcome.duplicates
        )
    elif outcome.kind is OutcomeKind.TOO_LARGE:
        if len(batch) == 1:
            reason = f"too large for the receiver even on its own: {outcome.message}"
            result.dead_lettered += queue.dead_letter(seqs, outcome.status, reason)
            result.rejections = reason
            return
        half = (len(batch) + 1) // 2
        result.batch_limit = min(result.batch_limit, half)  # the rest of this drain fits too
        for part in (batch[:half], batch[half:]):
            deliver(queue, client, part, result)
            if result.failure is not None:
                return
    elif outcome.kind is OutcomeKind.REJECTED:
        result.dead_lettered += queue.dead_letter(seqs, outcome.status, outcome.message)
        result.rejections = outcome.message
    else:
        result.failure = outcome


class FailureLog:
    """Whether a failure is news, so that it is logged once and not on every retry: news is
    a failure other than the last one logged, and the first success after it."""

    def __init__(self) -> None:
        self.logged: Optional[str] = None

    def is_new(self, message: str) -> bool:
        if message == self.logged:
            return False
        self.logged = message
        return True

    def recovered(self) -> bool:
        """True once after a logged failure, when requests get through again."""
        failing, self.logged = self.logged is not None, None
        return failing


class Pusher:
    """The push loop the runner runs in its own thread."""

    def __init__(
        self,
        queue: ReadingQueue,
        client: ReceiverClient,
        batch_size: int,
        interval_ms: int,
        backoff: Optional[Backoff] = None,
    ) -> None:
        self.queue = queue
        self.client = client
        self.batch_size = batch_size
        self.interval_s = interval_ms / 1000.0
        self.backoff = backoff or Backoff()
        self.last_result: Optional[DrainResult] = None
        self.last_delay = 0.0
        self.failures = FailureLog()
        # Set by receiver_answered() while a back-off may be cut short.
        self.receiver_back = threading.Event()
        self.may_cut_backoff = False
        self.idle = False  # the last drain found nothing queued

    def run(self, stop: threading.Event) -> None:
        """Drain every interval (a drain keeps going at once while batches come back full),
        back off on failure; on `stop`, finish the request in flight (bounded by the client's
        timeout) and return. With nothing queued it sleeps until readings arrive, instead of
        waking every interval to find nothing: the first readings go at once, and the
        interval after each push still gathers the next ones into a batch."""
        while not stop.is_set():
            delay = self.cycle(stop)
            if self.idle:
                if self.wait_for_readings(stop):
                    break
            elif self.wait(delay, stop):
                break

    def wait_for_readings(self, stop: threading.Event) -> bool:
        """Sleep until the queue has readings; True once stop is set."""
        self.queue.arrived.clear()
        while self.queue.depth() == 0:  # after clear(): a reading queued since is seen here
            if stop.is_set():
                return True
            if self.queue.arrived.wait(IDLE_CHECK_S):
                self.queue.arrived.clear()
        return stop.is_set()

    def receiver_answered(self) -> None:
        """Another request (a heartbeat) got through: end a back-off early.

        The back-off grows to minutes during a long outage, and without this the queue would
        sit unsent for up to that long after the receiver is back. A back-off the receiver
        asked for (Retry-After) is kept: it said when to come back.
        """
        if self.may_cut_backoff:
            self.receiver_back.set()

    def wait(self, delay: float, stop: threading.Event) -> bool:
        """Sleep delay s, less if receiver_answered() ends a back-off; True once stop is set.
        Only a back-off that may be cut short looks every second; an interval is one sleep."""
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return stop.is_set()
            step = min(remaining, BACKOFF_CHECK_S) if self.may_cut_backoff else remaining
            if stop.wait(step):
                return True
            if self.receiver_back.is_set():
                return False

    def cycle(self, stop: Optional[threading.Event] = None) -> float:
        """One drain; returns how long to wait before the next."""
        self.receiver_back.clear()
        self.may_cut_backoff = False
        try:
            result = drain(self.queue, self.client, self.batch_size, stop)
        except Exception:
            log.exception("push failed")
            self.idle = False
            self.last_delay = self.backoff.next_delay()
            self.may_cut_backoff = True
            return self.last_delay
        self.last_result = result
        self.idle = result.failure is None and result.requests == 0
        if result.failure is None:
            if result.requests and self.failures.recovered():
                log.info("receiver accepts readings again (%s)", result.summary())
            self.backoff.reset()
            self.last_delay = self.interval_s
            return self.last_delay
        self.last_delay = self.backoff.next_delay(result.failure.retry_after)
        self.may_cut_backoff = result.failure.retry_after is None
        if self.failures.is_new(result.failure.message):  # log changes, not repeats
            log.warning(
                "push failed, %d readings queued, retrying in %.1f s: %s",
                self.queue.depth(),
                self.last_delay,
                result.failure.message,
            )
        return self.last_delay

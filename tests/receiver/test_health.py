"""/healthz proves that the database takes a write: 503 while the write lock is held past
busy_timeout_ms, on a full disk and on a read-only file; 200 again once it can write.
No answer carries SQLite's words; they are logged with the request id.

The full disk is real: the receiver runs with RLIMIT_FSIZE (tests.support.processes), so
its writes past that size fail as on a full file system. The read-only file is real too:
the receiver runs as an unprivileged user when the tests run as root.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from beam_receiver.health_probe import WriteProbe
from beam_receiver.storage import HEALTH_PROBE_BYTES

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.processes import child_pids, file_size_limit
from tests.support.readings import valid_reading
from tests.support.receiver import ReceiverProcess, configure_receiver
from tests.support.responses import assert_error
from tests.support.waiting import wait_for

# What SQLite says about a broken database; none of it may reach an answer.
SQLITE_WORDS = ("sqlite", "locked", "disk", "readonly", "read-only", "I/O", "unable", ".db")
NOBODY = 65534


def assert_generic_503(status: int, headers: Any, text: str) -> None:
    assert status == 503, text
    body = json.loads(text)
    assert body["error"] == "unavailable" and body["details"] == []
    assert int(headers["Retry-After"]) > 0
    for word in SQLITE_WORDS:
        assert word.lower() not in text.lower(), f"{word!r} in the answer: {text}"


def logged_errors(log: Path, request_id: str) -> list[str]:
    """The `error` of the receiver's log lines stamped with this request id."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        line["error"] for line in lines if line.get("request_id") == request_id and "error" in line
    ]


def probe_row(receiver: Receiver) -> Any:
    """The health probe's row: (written_at_ms, its random bytes), or None before any."""
    rows = receiver.state.database.read("SELECT written_at_ms, room FROM health_probe")
    return tuple(rows[0]) if rows else None


def healthz_status(receiver: Receiver) -> int:
    return receiver.client.get("/healthz").status_code


# -- in this process ----------------------------------------------------------------------


def test_healthz_writes_a_page_worth_of_random_bytes(receiver: Receiver) -> None:
    assert probe_row(receiver) is None
    response = receiver.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    written_at_ms, room = probe_row(receiver)
    assert written_at_ms > 0 and len(room) == HEALTH_PROBE_BYTES


def test_a_worker_probes_at_most_once_per_interval(receiver: Receiver) -> None:
    now = [100.0]
    probe = WriteProbe(receiver.state.database, every_s=1.0, clock=lambda: now[0])
    version = probe.check()
    first = probe_row(receiver)
    now[0] += 0.9
    assert probe.check() == version
    assert probe_row(receiver) == first  # answered from the last probe
    now[0] += 0.2
    assert probe.check() == version
    assert probe_row(receiver)[1] != first[1]  # written again


def test_a_failed_probe_is_remembered_for_the_interval_too(
    make_receiver: Callable[..., Receiver],
) -> None:
    """While the database is locked, a flood of /healthz waits busy_timeout_ms once a second,
    not once per request."""
    receiver = make_receiver(busy_timeout_ms=300)
    now = [100.0]
    probe = WriteProbe(receiver.state.database, every_s=1.0, clock=lambda: now[0])
    with receiver.write_lock_held():
        with pytest.raises(receiver.state.database.errors, match="lock"):
            probe.check()
        started = time.monotonic()
        with pytest.raises(receiver.state.database.errors, match="lock"):
            probe.check()
        assert time.monotonic() - started < 0.2  # no second wait for the lock
    now[0] += 1.0
    assert probe.check() >= 1


def test_healthz_is_503_while_the_write_lock_is_held_past_busy_timeout(
    make_receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = make_receiver(busy_timeout_ms=50)
    with receiver.write_lock_held():
        with caplog.at_level(logging.ERROR, logger="beam_receiver"):
            response = receiver.client.get("/healthz", headers={"X-Request-ID": "health-1"})
        assert_generic_503(response.status_code, response.headers, response.get_data(as_text=True))
        # Reads still work: only a write shows the database cannot take readings now.
        assert receiver.get("/api/nodes").status_code == 200
        logged = [r for r in caplog.records if getattr(r, "event", "") == "health_failed"]
        assert [(r.request_id, "lock" in r.error) for r in logged] == [("health-1", True)]  # type: ignore[attr-defined]
    wait_for(lambda: healthz_status(receiver) == 200, 10, "/healthz to answer 200 again")


@pytest.mark.sqlite_only
def test_a_vanished_database_is_503_without_internals(receiver: Receiver) -> None:
    receiver.state.database.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{receiver.directory / 'receiver.db'}{suffix}").unlink(missing_ok=True)
    for response in (receiver.client.get("/healthz"), receiver.get("/api/readings")):
        assert_error(response, 503, "unavailable")
        assert_generic_503(response.status_code, response.headers, response.get_data(as_text=True))


# -- a real `beam-receiver serve` -----------------------------------------------------------


def unhealthy(served: ReceiverProcess, name: str) -> requests.Response:
    """The first 503 of /healthz, polled (a worker reuses a probe for up to a second)."""
    answers: list[requests.Response] = []

    def refused() -> bool:
        request_id = f"{name}-{len(answers)}"
        answers.append(served.request("GET", "/healthz", headers={"X-Request-ID": request_id}))
        return answers[-1].status_code == 503

    wait_for(refused, 10, f"/healthz to answer 503 ({name})")
    return answers[-1]


def post_until_refused(
    served: ReceiverProcess, payload_chars: int, batch: int
) -> requests.Response:
    """Post batches of readings until one is refused; returns the refusal."""
    seq = int(served.__dict__.setdefault("next_seq", 1))
    for _ in range(2000):
        readings = [
            valid_reading(number, payload={"cpm": number, "note": "x" * payload_chars})
            for number in range(seq, seq + batch)
        ]
        seq += batch
        served.__dict__["next_seq"] = seq
        response = served.post("/api/readings", {"readings": readings})
        if response.status_code != 200:
            return response
    raise AssertionError("the receiver never ran out of room")


def test_healthz_is_503_on_a_full_disk_and_200_once_there_is_room(tmp_path: Path) -> None:
    limit = 600_000  # bytes per file: the database, its WAL and receiver.log
    served = configure_receiver(tmp_path, workers=1, threads=2, prefix=file_size_limit(limit))
    with served:
        # Fill it: big batches first, then single small readings, until even those fail.
        refused = post_until_refused(served, payload_chars=2000, batch=50)
        assert_generic_503(refused.status_code, refused.headers, refused.text)
        refused = post_until_refused(served, payload_chars=1, batch=1)
        assert_generic_503(refused.status_code, refused.headers, refused.text)

        answer = unhealthy(served, "full-disk")
        assert_generic_503(answer.status_code, answer.headers, answer.text)
        assert logged_errors(served.log, answer.headers["X-Request-ID"])
        assert max(path.stat().st_size for path in tmp_path.glob("receiver.db*")) >= limit * 0.9

        # Room again (the limit lifted in the worker): healthy, and readings are taken.
        assert served.process is not None
        for worker in child_pids(served.process.pid):
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.prlimit(worker, resource.RLIMIT_FSIZE, (hard, hard))
        wait_for(served.healthy, 30, "/healthz to answer 200 once there is room")
        more = [valid_reading(seq) for seq in range(10**6, 10**6 + 10)]
        assert served.post("/api/readings", {"readings": more}).json() == {
            "accepted": 10,
            "duplicates": 0,
        }


@pytest.fixture
def unprivileged() -> Iterator[tuple[Path, list[str]]]:
    """A directory the receiver can own, and the prefix that runs it as a user for whom a
    file's mode counts (root ignores it): nobody, when these tests run as root."""
    if os.geteuid() != 0:
        with tempfile.TemporaryDirectory() as directory:
            yield Path(directory), []
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file would not stop root")
    directory = Path(tempfile.mkdtemp(prefix="beam-receiver-ro-", dir="/tmp"))
    try:
        yield directory, ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_healthz_is_503_while_the_database_file_is_read_only(
    unprivileged: tuple[Path, list[str]],
) -> None:
    directory, prefix = unprivileged
    served = configure_receiver(directory / "receiver", workers=1, threads=2, prefix=prefix)
    if prefix:
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
    with served:
        assert served.post("/api/readings", valid_reading(1)).status_code == 200
        served.database.chmod(0o444)
        answer = unhealthy(served, "read-only")
        assert_generic_503(answer.status_code, answer.headers, answer.text)
        errors = logged_errors(served.log, answer.headers["X-Request-ID"])
        assert errors and all("readonly" in error for error in errors)
        served.database.chmod(0o644)
        wait_for(served.healthy, 10, "/healthz to answer 200 once the file is writable")
        assert served.readings(DEVICE)[0]["seq"] == 1

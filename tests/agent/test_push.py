"""The push client and loop against a real local HTTP server that misbehaves on demand."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Callable, Optional

import pytest

from beam_agent.push import (
    Backoff,
    OutcomeKind,
    Pusher,
    ReceiverClient,
    classify,
    drain,
    parse_retry_after,
)
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading

from tests.support.constants import DEVICE
from tests.support.receiver_double import ReceiverDouble, RecordedRequest, Reply
from tests.support.waiting import free_port, wait_for

TOKEN = "s3cr3t-device-token-4f9a"
START = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
MakeClient = Callable[..., ReceiverClient]


def readings(count: int, sensor: str = "geiger") -> list[Reading]:
    return [
        Reading(
            DEVICE, sensor, "mightyohm", {"cpm": i, "mode": "SLOW"}, START + timedelta(seconds=i)
        )
        for i in range(count)
    ]


@pytest.fixture
def receiver() -> Iterator[ReceiverDouble]:
    with ReceiverDouble() as double:
        yield double


@pytest.fixture
def make_client(receiver: ReceiverDouble) -> Iterator[MakeClient]:
    clients: list[ReceiverClient] = []

    def make(
        url: str = "", token: Callable[[], str] = lambda: TOKEN, **options: int
    ) -> ReceiverClient:
        client = ReceiverClient(url or receiver.url, DEVICE, token, 10.0, "1.2.3", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def pump(queue: ReadingQueue, pusher: Pusher, cycles: int = 50) -> None:
    """Run push cycles (ignoring the back-off delays) until the queue is empty."""
    for _ in range(cycles):
        pusher.cycle()
        if queue.depth() == 0:
            return
    pytest.fail(f"queue not empty after {cycles} push cycles: {queue.status()}")


def zero_jitter() -> Backoff:
    return Backoff(base_s=1.0, cap_s=300.0, random_fn=lambda: 0.0)


# -- answers ------------------------------------------------------------------------------


def test_200_acknowledges_and_counts_duplicates(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    client = make_client()
    queue.enqueue(readings(10))
    assert client.post_readings(queue.lease(4)).accepted == 4  # delivered, answer "lost"

    result = drain(queue, client, batch_size=100)
    assert (result.sent, result.accepted, result.duplicates) == (10, 6, 4)
    assert result.failure is None and result.requests == 1 and result.last_status == 200
    counters = queue.counters()
    assert counters["pushed"] == 10 and counters["duplicates_acknowledged"] == 4
    assert queue.depth() == 0
    assert receiver.stored_seqs(DEVICE) == set(range(1, 11))
    last_push = queue.status()["last_push"]
    assert last_push["ok"] is True and "delivered 10 (4 duplicates)" in last_push["detail"]


def test_503_then_200_retries_and_loses_nothing(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    queue.enqueue(readings(30))
    receiver.script(Reply(503, body="<html><h1>503 Service Unavailable</h1></html>"))
    pusher = Pusher(queue, make_client(), batch_size=10, interval_ms=1000, backoff=zero_jitter())

    assert pusher.cycle() == 0.0  # zero jitter: retry at once; 0 * ceiling
    assert pusher.last_result is not None and pusher.last_result.failure is not None
    assert pusher.last_result.failure.kind is OutcomeKind.RETRY
    assert "HTTP 503: <html><h1>503 Service Unavailable</h1></html>" in (
        pusher.last_result.failure.message
    )
    assert queue.depth() == 30 and queue.counters()["pushed"] == 0
    status = queue.status()
    assert status["last_push"]["ok"] is False and "503" in status["last_push"]["detail"]

    assert pusher.cycle() == 1.0  # success: back to the interval, back-off reset
    assert pusher.backoff.failures == 0
    assert queue.depth() == 0
    assert receiver.stored_seqs(DEVICE) == set(range(1, 31))
    assert [len(r.json["readings"]) for r in receiver.requests("/api/readings")] == [10, 10, 10, 10]


def test_429_retry_after_is_honoured(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    queue.enqueue(readings(3))
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    receiver.script(
        Reply(429, headers={"Retry-After": "7"}),
        Reply(503, headers={"Retry-After": later}),
        Reply(503),
    )
    pusher = Pusher(queue, make_client(), batch_size=10, interval_ms=500, backoff=zero_jitter())
    assert pusher.cycle() == 7.0
    assert 100.0 < pusher.cycle() <= 120.0  # an HTTP date, however slow this machine is
    assert pusher.cycle() == 0.0  # no Retry-After: the jittered back-off alone
    assert pusher.cycle() == 0.5 and queue.depth() == 0


def test_413_splits_until_the_batch_fits(queue: ReadingQueue) -> None:
    with ReceiverDouble(max_readings_per_request=7) as receiver:
        client = ReceiverClient(receiver.url, DEVICE, lambda: TOKEN, 10.0, "1.2.3")
        queue.enqueue(readings(50))
        result = drain(queue, client, batch_size=50)
        client.close()
        assert result.failure is None and result.sent == 50
        assert receiver.stored_seqs(DEVICE) == set(range(1, 51))
        answered = receiver.requests("/api/readings")
        too_large = [r for r in answered if r.status == 413]
        delivered = [len(r.json["readings"]) for r in answered if r.status == 200]
        assert too_large and all(len(r.json["readings"]) > 7 for r in too_large)
        assert sum(delivered) == 50 and max(delivered) <= 7
        assert result.batch_limit <= 7  # the rest of the drain used the size that fits
        assert queue.counters()["dead_lettered"] == 0


def test_413_for_a_single_reading_dead_letters_it(queue: ReadingQueue) -> None:
    with ReceiverDouble(max_body_bytes=2000) as receiver:
        client = ReceiverClient(
            receiver.url, DEVICE, lambda: TOKEN, 10.0, "1.2.3", gzip_min_bytes=10**9
        )
        huge = Reading(DEVICE, "camera", "blob", {"data": "A" * 5000}, START)
        queue.enqueue([*readings(3), huge, *readings(3)])
        result = drain(queue, client, batch_size=10)
        client.close()
    assert result.failure is None and result.sent == 6 and result.dead_lettered == 1
    assert receiver.stored_seqs(DEVICE) == {1, 2, 3, 5, 6, 7}
    [letter] = queue.dead_letters()
    assert letter["reading"].seq == 4 and letter["status"] == 413
    assert "too large for the receiver even on its own" in letter["reason"]
    assert queue.depth() == 0


def test_400_dead_letters_the_batch_and_the_rest_is_delivered(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    def reject_bad(request: RecordedRequest) -> Reply | None:
        batch = request.json["readings"] if isinstance(request.json, dict) else []
        bad = [i for i, r in enumerate(batch) if r.get("sensor") == "bad"]
        if not bad:
            return None
        body = {
            "error": "invalid_body",
            "message": "payload.cpm must be a number",
            "details": [{"index": bad[0], "field": "payload.cpm"}],
        }
        return Reply(400, body=body)

    receiver.intercept(reject_bad)
    queue.enqueue(readings(5) + readings(4) + readings(1, sensor="bad") + readings(5))
    result = drain(queue, make_client(), batch_size=5)
    assert result.failure is None
    assert (result.sent, result.dead_lettered) == (10, 5)
    assert receiver.stored_seqs(DEVICE) == {1, 2, 3, 4, 5, 11, 12, 13, 14, 15}
    letters = queue.dead_letters()
    assert [d["reading"].seq for d in letters] == [6, 7, 8, 9, 10]
    assert letters[0]["status"] == 400
    assert "invalid_body payload.cpm must be a number" in letters[0]["reason"]
    assert '"field": "payload.cpm"' in letters[0]["reason"]
    status = queue.status()
    assert status["counters"]["dead_lettered"] == 5 and status["depth"] == 0
    assert status["last_push"]["ok"] is False  # something was parked: worth a look
    assert "dead-lettered 5" in status["last_push"]["detail"]


def test_401_is_retried_and_a_rotated_token_file_is_picked_up(
    tmp_path: Path, queue: ReadingQueue
) -> None:
    token_file = tmp_path / "agent.token"
    with ReceiverDouble(token="the-new-token") as receiver:
        client = ReceiverClient(
            receiver.url, DEVICE, lambda: token_file.read_text().strip(), 10.0, "1.2.3"
        )
        queue.enqueue(readings(8))

        missing = drain(queue, client, batch_size=5)  # token file not deployed yet
        assert missing.failure is not None and missing.failure.kind is OutcomeKind.AUTH
        assert "cannot read the device token" in missing.failure.message
        assert receiver.requests() == []

        token_file.write_text("the-old-token\n")
        refused = drain(queue, client, batch_size=5)
        assert refused.failure is not None and refused.failure.kind is OutcomeKind.AUTH
        assert refused.failure.status == 401 and refused.failure.retryable
        assert queue.depth() == 8 and queue.counters()["dead_lettered"] == 0

        token_file.write_text("the-new-token\n")  # rotated: the next request uses it
        delivered = drain(queue, client, batch_size=5)
        client.close()
    assert delivered.failure is None and delivered.sent == 8
    assert receiver.stored_seqs(DEVICE) == set(range(1, 9))


def test_403_is_retried_not_dead_lettered(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    receiver.script(Reply(403, body={"error": "forbidden", "message": "other device"}))
    queue.enqueue(readings(3))
    result = drain(queue, make_client(), batch_size=5)
    assert result.failure is not None and result.failure.kind is OutcomeKind.AUTH
    assert queue.depth() == 3 and queue.dead_letters() == []


def test_404_is_a_configuration_error_kept_queued_and_shown_by_status(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    """A seed's api_url with the endpoint in it: every POST 404s. The readings are fine, the
    address is wrong: they stay queued (no dead letter), and status names the problem."""
    queue.enqueue(readings(7))
    client = make_client(receiver.url + "/api/readings")  # the double: no such route, 404
    result = drain(queue, client, batch_size=5)
    assert result.failure is not None and result.failure.kind is OutcomeKind.CONFIG
    assert result.failure.retryable and result.failure.status == 404
    assert queue.depth() == 7 and queue.dead_letters() == []
    assert f"for {receiver.url}/api/readings/api/readings" in result.failure.message
    assert "fix api_url" in result.failure.message
    status = queue.status()
    assert status["last_push"]["failure"] == "config"
    assert status["config_error"]["status"] == 404
    assert status["config_error"]["message"] == result.failure.message

    fixed = drain(queue, make_client(), batch_size=5)  # api_url fixed: everything flows
    assert fixed.failure is None and fixed.sent == 7
    assert receiver.stored_seqs(DEVICE) == set(range(1, 8))
    assert queue.status()["config_error"] is None


def test_dropped_connection_is_retried_and_each_seq_stored_once(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    # The receiver stores the batch, then the connection dies before the answer: the agent
    # cannot know, sends it again, and the receiver's dedupe keeps one copy.
    receiver.script(
        Reply(drop_connection=True, store=True),
        Reply(drop_connection=True),
        Reply(drop_connection=True, store=True),
    )
    queue.enqueue(readings(40))
    pusher = Pusher(queue, make_client(), batch_size=15, interval_ms=100, backoff=zero_jitter())
    pump(queue, pusher)

    stored = receiver.stored_readings(DEVICE)
    assert [r["seq"] for r in stored] == list(range(1, 41))
    assert stored[0]["payload"] == {"cpm": 0, "mode": "SLOW"}
    # The first batch was processed three times (stored, lost, stored again, answered), the
    # others once; each seq is stored once all the same.
    receipts = receiver.receipt_counts()
    assert [receipts[(DEVICE, seq)] for seq in range(1, 41)] == [3] * 15 + [1] * 25
    assert len(receiver.stored_readings()) == 40
    dropped = [r for r in receiver.requests("/api/readings") if r.status is None]
    assert len(dropped) == 3
    counters = queue.counters()
    assert counters["pushed"] == 40 and counters["dropped"] == 0
    assert counters["duplicates_acknowledged"] == 15  # what the one answer reported


def test_a_dead_port_is_a_retry_and_keeps_the_queue(
    queue: ReadingQueue, make_client: MakeClient
) -> None:
    port = free_port()  # nobody listens there
    queue.enqueue(readings(5))
    result = drain(queue, make_client(f"http://127.0.0.1:{port}"), batch_size=10)
    assert result.failure is not None and result.failure.kind is OutcomeKind.RETRY
    assert result.failure.status is None
    assert result.failure.message.startswith("network error: ConnectionRefusedError")
    assert queue.depth() == 5 and queue.counters()["pushed"] == 0
    assert queue.status()["last_push"]["detail"] == result.failure.message


def test_a_garbage_2xx_still_acknowledges(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    receiver.script(Reply(200, body="<html>fine</html>", store=True))
    queue.enqueue(readings(4))
    result = drain(queue, make_client(), batch_size=10)
    assert result.failure is None and result.sent == 4 and result.duplicates == 0
    assert queue.depth() == 0 and queue.counters()["duplicates_acknowledged"] == 0


# -- the request ------------------------------------------------------------------------


def test_headers_and_body(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    queue.enqueue(readings(2))
    drain(queue, make_client(gzip_min_bytes=10**6), batch_size=10)
    [request] = receiver.requests("/api/readings")
    assert request.method == "POST"
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    assert request.header("X-Beam-Device") == DEVICE
    assert request.header("X-Beam-Agent-Version") == "1.2.3"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Content-Encoding") is None  # small bodies go as they are
    assert request.json == {"readings": [r.to_dict() for r in queue.export()]}
    assert request.json["readings"][1]["timestamp"] == "2026-02-15T19:00:01.000Z"


def test_large_bodies_are_gzipped(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    queue.enqueue(readings(200))
    drain(queue, make_client(gzip_min_bytes=1024), batch_size=500)
    [request] = receiver.requests("/api/readings")
    assert request.header("Content-Encoding") == "gzip"
    assert request.raw_body[:2] == b"\x1f\x8b"
    assert len(request.raw_body) < len(request.body)
    assert gzip.decompress(request.raw_body) == request.body
    assert request.json == {"readings": [r.to_dict() for r in queue.export()]}
    assert receiver.stored_count() == 200


def test_post_json_for_telemetry(receiver: ReceiverDouble, make_client: MakeClient) -> None:
    outcome = make_client().post_json("/api/telemetry", {"node_id": DEVICE, "metrics": {}})
    assert outcome.ok and outcome.status == 200
    assert receiver.requests_to("/api/telemetry") == [{"node_id": DEVICE, "metrics": {}}]
    assert receiver.requests("/api/telemetry")[0].header("X-Beam-Device") == DEVICE


@pytest.mark.parametrize(
    ("token", "problem"),
    [("", "device token is empty"), ("two words", "not a single printable ASCII word")],
)
def test_an_unusable_token_is_an_auth_failure_without_a_request(
    receiver: ReceiverDouble, make_client: MakeClient, token: str, problem: str
) -> None:
    outcome = make_client(token=lambda: token).post_json("/api/telemetry", {})
    assert outcome.kind is OutcomeKind.AUTH and problem in outcome.message
    assert receiver.requests() == []


def test_the_token_never_reaches_the_logs(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    queue: ReadingQueue,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    with ReceiverDouble(token=TOKEN) as receiver:
        client = ReceiverClient(receiver.url, DEVICE, lambda: TOKEN, 10.0, "1.2.3")
        wrong = ReceiverClient(receiver.url, DEVICE, lambda: TOKEN + "x", 10.0, "1.2.3")
        queue.enqueue(readings(12))
        Pusher(queue, wrong, batch_size=3, interval_ms=10, backoff=zero_jitter()).cycle()
        assert receiver.requests()[0].status == 401
        receiver.script(Reply(503), Reply(drop_connection=True), Reply(400))
        pusher = Pusher(queue, client, batch_size=3, interval_ms=10, backoff=zero_jitter())
        pump(queue, pusher)
        client.close()
        wrong.close()
    assert receiver.stored_count() == 9 and queue.counters()["dead_lettered"] == 3
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert any("push failed" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(queue.status())
    assert TOKEN not in repr(vars(client))


# -- the loop -----------------------------------------------------------------------------


def test_pusher_run_delivers_and_stops_promptly_even_while_backing_off(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50)
    stop = threading.Event()
    thread = threading.Thread(target=pusher.run, args=(stop,))
    thread.start()
    try:
        for round_no in range(3):  # readings arriving while it runs are picked up
            queue.enqueue(readings(20))
            wait_for(lambda: queue.depth() == 0, 30, f"round {round_no} to be delivered")
        assert receiver.stored_seqs(DEVICE) == set(range(1, 61))

        receiver.fail_all(503, retry_after=3600)  # the receiver goes away for an hour
        queue.enqueue(readings(5))
        wait_for(lambda: pusher.last_delay >= 3600, 30, "the back-off to be chosen")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()  # it did not sleep the hour out
    assert queue.depth() == 5


def test_a_heartbeat_that_gets_through_ends_a_long_backoff(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    """After a long outage the back-off is minutes; the queue must not wait that out."""
    longest = Backoff(base_s=600.0, cap_s=600.0, random_fn=lambda: 1.0)
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50, backoff=longest)
    receiver.fail_all(503)  # no Retry-After: the agent chooses its own back-off
    queue.enqueue(readings(5))
    stop = threading.Event()
    thread = threading.Thread(target=pusher.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: pusher.last_delay == 600.0, 30, "the 10-minute back-off to be chosen")
        receiver.recover()
        pusher.receiver_answered()  # what the telemetry thread does after a heartbeat's 2xx
        wait_for(lambda: queue.depth() == 0, 30, "the queue to drain long before 10 minutes")
    finally:
        stop.set()
        thread.join(30)
    assert receiver.stored_seqs(DEVICE) == set(range(1, 6))


def test_a_heartbeat_does_not_cut_short_a_backoff_the_receiver_asked_for(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50, backoff=zero_jitter())
    receiver.fail_all(503, retry_after=600)
    queue.enqueue(readings(5))
    pusher.cycle()
    assert pusher.last_delay == 600.0
    pusher.receiver_answered()
    assert not pusher.receiver_back.is_set()
    stop = threading.Event()
    stop.set()
    assert pusher.wait(600.0, stop) is True  # and stop still ends any wait


def test_drain_holds_one_batch_at_a_time(
    receiver: ReceiverDouble, queue: ReadingQueue, make_client: MakeClient
) -> None:
    queue.enqueue(readings(95))
    result = drain(queue, make_client(), batch_size=20)
    sizes = [len(r.json["readings"]) for r in receiver.requests("/api/readings")]
    assert sizes == [20, 20, 20, 20, 15] and result.sent == 95
    stop = threading.Event()
    stop.set()
    queue.enqueue(readings(5))
    assert drain(queue, make_client(), batch_size=20, stop=stop).requests == 0


# -- classification and back-off ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        (200, {}, b'{"accepted": 3, "duplicates": 1}', OutcomeKind.OK),
        (204, {}, b"", OutcomeKind.OK),
        (301, {"Location": "https://receiver/"}, b"", OutcomeKind.CONFIG),
        (400, {}, b'{"error": "invalid_body"}', OutcomeKind.REJECTED),
        (401, {}, b"", OutcomeKind.AUTH),
        (403, {}, b"", OutcomeKind.AUTH),
        (404, {}, b"<html>not found</html>", OutcomeKind.CONFIG),
        (405, {}, b"", OutcomeKind.CONFIG),
        (408, {}, b"", OutcomeKind.RETRY),
        (413, {}, b"", OutcomeKind.TOO_LARGE),
        (415, {}, b"", OutcomeKind.REJECTED),
        (429, {"Retry-After": "5"}, b"", OutcomeKind.RETRY),
        (500, {}, b"", OutcomeKind.RETRY),
        (502, {}, b"<html>Bad Gateway</html>", OutcomeKind.RETRY),
        (503, {"Retry-After": "2"}, b"{}", OutcomeKind.RETRY),
    ],
)
def test_classify(status: int, headers: dict[str, str], body: bytes, kind: OutcomeKind) -> None:
    outcome = classify(status, headers, body)
    assert outcome.kind is kind and outcome.status == status
    assert outcome.ok is (kind is OutcomeKind.OK)


def test_classify_reads_counts_and_messages() -> None:
    ok = classify(200, {}, b'{"accepted": 3, "duplicates": 1}')
    assert (ok.accepted, ok.duplicates) == (3, 1)
    garbage = classify(200, {}, b'{"accepted": "many", "duplicates": -2}')
    assert (garbage.accepted, garbage.duplicates) == (None, 0)
    rejected = classify(400, {}, b'{"error": "invalid_body", "message": "seq missing"}')
    assert rejected.message == "HTTP 400: invalid_body seq missing"
    html = classify(502, {}, b"<html>\n  Bad   Gateway\n</html>")
    assert html.message == "HTTP 502: <html> Bad Gateway </html>"
    assert classify(429, {"Retry-After": "5"}, b"").retry_after == 5.0
    assert "api_url" in classify(308, {"Location": "https://x/"}, b"").message


def test_parse_retry_after() -> None:
    now = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Sun, 15 Feb 2026 19:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 15 Feb 2026 18:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("999999999", now) == 3600.0  # capped
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now) is None


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    highest = Backoff(base_s=1.0, cap_s=60.0, random_fn=lambda: 0.999)
    assert [round(highest.next_delay()) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    highest.reset()
    assert round(highest.next_delay()) == 1
    lowest = Backoff(base_s=1.0, cap_s=60.0, random_fn=lambda: 0.0)
    assert lowest.next_delay() == 0.0
    assert lowest.next_delay(retry_after=9.0) == 9.0  # never sooner than asked
    assert highest.next_delay(retry_after=0.5) > 1.0  # nor sooner than the back-off
    real = Backoff(base_s=2.0, cap_s=10.0)
    for _ in range(50):
        assert 0.0 <= real.next_delay() <= 10.0


class CountingQueue(ReadingQueue):
    """A real queue that counts how often the pusher asks it for a batch."""

    leases = 0

    def lease(self, limit: int) -> list[Reading]:
        self.leases += 1
        return super().lease(limit)


def test_an_idle_pusher_sleeps_until_readings_arrive_then_sends_at_once(
    receiver: ReceiverDouble, tmp_path: Path, make_client: MakeClient
) -> None:
    # Nothing queued: no lease every interval (no work when nothing is due). A reading
    # wakes it and goes at once, not an interval later.
    queue = CountingQueue(tmp_path / "counting")
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50)
    stop = threading.Event()
    thread = threading.Thread(target=pusher.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: pusher.idle, 30, "the pusher to find the queue empty")
        leases = queue.leases
        threading.Event().wait(1.0)  # twenty intervals
        assert queue.leases == leases  # it slept through them
        queue.enqueue(readings(3))
        wait_for(lambda: queue.depth() == 0, 30, "the readings to be delivered")
        assert receiver.stored_seqs(DEVICE) == {1, 2, 3}
        wait_for(lambda: pusher.idle, 30, "the pusher to be idle again")
        stop.set()
        queue.wake()  # what the runner does when it stops: the idle wait ends at once
        thread.join(30)
    finally:
        stop.set()
        queue.wake()
        thread.join(30)
    assert not thread.is_alive()
    queue.close()


def test_an_idle_pusher_notices_stop_without_a_wake(
    queue: ReadingQueue, make_client: MakeClient
) -> None:
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50)
    stop = threading.Event()
    thread = threading.Thread(target=pusher.run, args=(stop,))
    thread.start()
    wait_for(lambda: pusher.idle, 30, "the pusher to find the queue empty")
    stop.set()  # no wake: the idle wait looks at stop every few seconds
    thread.join(30)
    assert not thread.is_alive()


class CountingEvent(threading.Event):
    """A stop event that counts the sleeps taken on it."""

    sleeps = 0

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.sleeps += 1
        return super().wait(timeout)


def test_an_interval_is_one_sleep_and_only_a_back_off_looks_every_second(
    queue: ReadingQueue, make_client: MakeClient
) -> None:
    pusher = Pusher(queue, make_client(), batch_size=50, interval_ms=50)
    stop = CountingEvent()
    assert pusher.wait(2.5, stop) is False
    assert stop.sleeps == 1  # no wake-up every second to look for a heartbeat
    pusher.may_cut_backoff = True  # a back-off a heartbeat may end
    stop.sleeps = 0
    assert pusher.wait(2.5, stop) is False
    assert stop.sleeps >= 3

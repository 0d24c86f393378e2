"""The health judgement over `beam-agent status --json` documents."""

from __future__ import annotations

import datetime

from ansible_collections.beam.fleet.plugins.module_utils.agent_status import (
    UTC,
    evaluate,
    parse_timestamp,
)

NOW = datetime.datetime(2026, 2, 15, 19, 6, 0, tzinfo=UTC)


def status(**extra):
    document = {
        "depth": 3,
        "oldest_queued_age_s": 1.0,
        "counters": {"pushed": 120, "dropped": 0, "dead_lettered": 0},
        "last_push": {"ok": True, "detail": "200", "at": "2026-02-15T19:05:59.000Z"},
        "last_success_at": "2026-02-15T19:05:59.500Z",
        "dead_letters": 0,
        "sensors": {"geiger": {"readings": 60, "errors": 1, "consecutive_errors": 0}},
    }
    document.update(extra)
    return document


def test_pushing_agent_with_reading_sensors_is_healthy():
    healthy, reasons, summary = evaluate(status(), now=NOW, expect_sensors=["geiger"])
    assert (healthy, reasons) == (True, [])
    assert summary["queue_depth"] == 3
    assert summary["last_push_age_s"] == 0.5
    assert summary["sensors"]["geiger"]["errors"] == 1


def test_never_pushed_is_unhealthy_with_the_last_attempt():
    healthy, reasons = evaluate(
        status(last_success_at=None, last_push={"ok": False, "detail": "401 unknown token"}), now=NOW
    )[:2]
    assert not healthy
    assert reasons == ["never pushed to the receiver (last attempt: 401 unknown token)"]


def test_never_pushed_is_fine_when_push_is_not_required():
    healthy = evaluate(status(last_success_at=None), now=NOW, require_push=False)[0]
    assert healthy


def test_stale_push_is_unhealthy():
    healthy, reasons = evaluate(status(last_success_at="2026-02-15T18:00:00Z"), now=NOW)[:2]
    assert not healthy
    assert reasons == ["last successful push 3960 s ago (limit 120 s)"]


def test_queue_and_dead_letter_limits():
    healthy, reasons = evaluate(
        status(depth=5000, dead_letters=2), now=NOW, max_queue_depth=1000, max_dead_letters=0
    )[:2]
    assert not healthy
    assert reasons == ["queue depth 5000 over 1000", "2 dead-lettered readings (limit 0)"]


def test_failing_and_silent_sensors_are_named():
    sensors = {
        "geiger": {"readings": 0, "errors": 9, "consecutive_errors": 9, "last_error": "no such device"},
        "bme": {"readings": 0, "errors": 0, "consecutive_errors": 0},
    }
    healthy, reasons = evaluate(status(sensors=sensors), now=NOW, expect_sensors=["geiger", "bme", "wind"])[:2]
    assert not healthy
    assert reasons == [
        "sensor wind: not reported by the agent yet",
        "sensor bme: no reading yet",
        "sensor geiger: 9 errors in a row (last: no such device)",
    ]


def test_not_a_document():
    assert evaluate([], now=NOW)[:2] == (False, ["agent status is not a JSON object"])


def test_parse_timestamp_forms():
    assert parse_timestamp("2026-02-15T19:06:00Z") == NOW
    assert parse_timestamp("2026-02-15T21:06:00.000000+02:00") == NOW
    assert parse_timestamp("2026-02-15T19:06:00.123456789Z").microsecond == 123456
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(None) is None


def test_push_before_the_restart_does_not_pass_a_rollout_gate():
    restarted = datetime.datetime(2026, 2, 15, 19, 5, 59, 600000, tzinfo=UTC)
    healthy, reasons = evaluate(status(), now=NOW, pushed_since=restarted)[:2]
    assert not healthy
    assert reasons == ["no successful push since 2026-02-15T19:05:59Z (last: 2026-02-15T19:05:59.500Z)"]
    before = restarted - datetime.timedelta(seconds=1)
    assert evaluate(status(), now=NOW, pushed_since=before)[0]

# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Is an agent healthy? The judgement over `beam-agent status --json`, as a pure function.

Why a function of its own: deploy gates (and later rollouts) must decide the same way
everywhere, and the rules need tests that feed them every shape of status, including
the ones a half-started agent produces.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


UTC = datetime.timezone.utc


def parse_timestamp(text):
    """An RFC 3339 timestamp as an aware datetime, or None when it is not one."""
    if not isinstance(text, str):
        return None
    match = _TIMESTAMP.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime.datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
    )
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment -= sign * offset
    return moment


def utc_now():
    return datetime.datetime.now(UTC)


def evaluate(status, now=None, require_push=True, max_push_age_s=120, max_queue_depth=None,
             max_dead_letters=None, max_consecutive_errors=3, require_readings=True,
             expect_sensors=None, pushed_since=None):
    """(healthy, reasons, summary) for one `beam-agent status --json` document.

    reasons name each failed rule in words an operator acts on; summary holds the numbers
    a fleet report shows (queue depth, last push, per-sensor errors). pushed_since (an aware
    datetime, the node's clock) asks for a push by the process started after it: a rollout's
    gate, where a push of the release before would otherwise pass for the new one.
    """
    now = now or utc_now()
    reasons = []
    if not isinstance(status, dict):
        return False, ["agent status is not a JSON object"], {}
    counters = status.get("counters") or {}
    depth = status.get("depth")
    last_push = status.get("last_push") or {}
    last_success = parse_timestamp(status.get("last_success_at"))
    push_age = None
    if last_success is not None:
        push_age = max(0.0, (now - last_success).total_seconds())
    sensors = status.get("sensors") or {}

    if require_push:
        if last_success is None:
            detail = last_push.get("detail") if isinstance(last_push, dict) else None
            reasons.append(
                "never pushed to the receiver"
                + (" (last attempt: %s)" % detail if detail else "")
            )
        elif max_push_age_s is not None and push_age > max_push_age_s:
            reasons.append(
                "last successful push %.0f s ago (limit %s s)" % (push_age, max_push_age_s)
            )
    if pushed_since is not None and last_success is not None and last_success < pushed_since:
        reasons.append(
            "no successful push since %s (last: %s)"
            % (pushed_since.strftime("%Y-%m-%dT%H:%M:%SZ"), status.get("last_success_at"))
        )
    if max_queue_depth is not None and isinstance(depth, int) and depth > max_queue_depth:
        reasons.append("queue depth %d over %d" % (depth, max_queue_depth))
    dead = status.get("dead_letters", counters.get("dead_lettered", 0)) or 0
    if max_dead_letters is not None and dead > max_dead_letters:
        reasons.append("%d dead-lettered readings (limit %d)" % (dead, max_dead_letters))
    for name in sorted(set(expect_sensors or []) - set(sensors)):
        reasons.append("sensor %s: not reported by the agent yet" % name)
    per_sensor = {}
    for name in sorted(sensors):
        stats = sensors[name] if isinstance(sensors[name], dict) else {}
        readings = stats.get("readings", 0) or 0
        consecutive = stats.get("consecutive_errors", 0) or 0
        per_sensor[name] = {
            "readings": readings,
            "errors": stats.get("errors", 0) or 0,
            "consecutive_errors": consecutive,
            "last_read": stats.get("last_read"),
            "last_error": stats.get("last_error"),
        }
        if max_consecutive_errors is not None and consecutive >= max_consecutive_errors:
            reasons.append(
                "sensor %s: %d errors in a row (last: %s)"
                % (name, consecutive, stats.get("last_error") or "unknown")
            )
        elif require_readings and readings == 0:
            reasons.append("sensor %s: no reading yet" % name)
    summary = {
        "queue_depth": depth,
        "oldest_queued_age_s": status.get("oldest_queued_age_s"),
        "pushed": counters.get("pushed", 0),
        "dropped": counters.get("dropped", 0),
        "dead_letters": dead,
        "last_push": last_push if isinstance(last_push, dict) else {},
        "last_success_at": status.get("last_success_at"),
        "last_push_age_s": push_age,
        "sensors": per_sensor,
    }
    return not reasons, reasons, summary

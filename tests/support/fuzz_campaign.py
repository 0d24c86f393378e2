"""A schemathesis campaign against a real `beam-receiver serve`, from the shipped OpenAPI file.

Cases come from beam_receiver/openapi.json (positive and negative, as schemathesis makes
them); each is sent over real HTTP with a chosen credential (either device, the operator,
a bad token or none) and checked with schemathesis' response checks. Positive write cases
are often "aimed": the body's device (or node) is set to the token's own, so that they get
past the 403 and reach validation and storage. A few write bodies are sent gzip'd, a few
padded over max_body_bytes.

Every POST /api/readings is tracked by its (device_id, seq) pairs, so that after the run
the database can be compared with what the answers said: it must hold exactly the pairs of
2xx answers, `accepted` must count exactly the pairs that were new, and nothing of a
rejected batch may be stored. Requests are sent one at a time, so "new" is well defined.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver

DEVICES = {"beamrider-0001": "fuzz-device-token-0001", "beamrider-0002": "fuzz-device-token-0002"}
OPERATOR = "fuzz-operator-token"
MAX_BODY_BYTES = 65_536
INT64_MAX = 2**63 - 1
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
WRITES = (
    "POST /api/readings",
    "POST /api/telemetry",
    "POST /api/nodes/register",
    "POST /api/collectd",
)
# Share of the requests per operation: the write endpoints get 70 %.
WEIGHTS = {
    "POST /api/readings": 34,
    "POST /api/telemetry": 12,
    "POST /api/nodes/register": 12,
    "POST /api/collectd": 12,
    "GET /api/readings": 8,
    "GET /api/analytics/series": 6,
    "GET /api/readings/latest": 4,
    "GET /api/nodes/{node_id}": 4,
    "GET /api/nodes/{node_id}/telemetry": 4,
    "GET /api/nodes/{node_id}/status-history": 4,
    "GET /api/nodes": 1,
    "GET /healthz": 1,
    "GET /metrics": 1,
    "GET /api/openapi.json": 1,
}
# (kind, name): who the request claims to be. Repeats weight the draw.
WRITE_CALLERS = [("device", "beamrider-0001")] * 5 + [("device", "beamrider-0002")] * 2
WRITE_CALLERS += [("operator", "ops"), ("bad", "wrong-token"), ("none", "")]
READ_CALLERS = [("operator", "ops")] * 7
READ_CALLERS += [("device", "beamrider-0001"), ("bad", "wrong-token"), ("none", "")]


def serve(directory: Path) -> ReceiverProcess:
    """A real receiver (gunicorn, 2 workers x 4 threads) that accepts any future timestamp,
    to run `with serve(directory) as served:`.

    max_future_s is huge so that the schema's timestamps (any year up to 9999) can be
    accepted: the clock rule is the one rule the fuzz deliberately switches off.
    """
    return configure_receiver(
        directory,
        devices=DEVICES,
        operators={"ops": OPERATOR},
        users={},
        expected_nodes=agent_nodes("beamrider-0001"),
        workers=2,
        threads=4,
        max_future_s=1e12,
        max_body_bytes=MAX_BODY_BYTES,
        telemetry_retention_days=0,
    )


def reading_pairs(body: Any) -> list[tuple[str, int]]:
    """The (device_id, seq) pairs a POST /api/readings body names (well-typed ones only)."""
    if isinstance(body, dict) and "readings" in body:
        items = body["readings"] if isinstance(body["readings"], list) else []
    else:
        items = [body]
    return [
        (item["device_id"], item["seq"])
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("device_id"), str)
        and type(item.get("seq")) is int
    ]


@dataclass
class Ledger:
    """What the answers said about readings, in the order they were given."""

    stored: set[tuple[str, int]] = field(default_factory=set)  # pairs of 2xx answers
    rejected: set[tuple[str, int]] = field(default_factory=set)  # pairs of non-2xx answers
    accepted_total: int = 0
    mismatches: list[str] = field(default_factory=list)

    def record(self, body: Any, status: int, answer: Any) -> None:
        pairs = reading_pairs(body)
        if not 200 <= status < 300:
            self.rejected.update(pairs)
            return
        new = set(pairs) - self.stored
        accepted, duplicates = answer.get("accepted"), answer.get("duplicates")
        if accepted != len(new) or duplicates != len(pairs) - len(new):
            self.mismatches.append(
                f"answer {answer} for {len(pairs)} readings of which {len(new)} were new"
            )
        self.stored.update(pairs)
        self.accepted_total += accepted if isinstance(accepted, int) else 0


@dataclass
class Campaign:
    """Counts, failures and the ledger of one run."""

    served: ReceiverProcess
    session: requests.Session = field(default_factory=requests.Session)
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)  # (label, status)
    failures: dict[str, str] = field(default_factory=dict)  # first report per kind
    ledger: Ledger = field(default_factory=Ledger)
    heartbeats_ok: int = 0
    collectd_accepted: int = 0  # collectd readings get the receiver's own (negative) seqs

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _token_of(kind: str, name: str) -> Optional[str]:
    if kind == "device":
        return DEVICES[name]
    if kind == "operator":
        return OPERATOR
    if kind == "bad":
        return name
    return None


def _aim(body: Any, label: str, device: str, seq_offset: int = 0) -> Any:
    """The body with its device (or node) set to the caller's own, where it names one.

    seq_offset moves a batch's seqs away from the small ones Hypothesis favours (without
    it, most readings would be duplicates of earlier requests' readings).
    """
    if label == "POST /api/readings":
        items = body.get("readings") if isinstance(body, dict) and "readings" in body else [body]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "device_id" in item:
                item["device_id"] = device
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is int and 1 <= seq <= INT64_MAX - seq_offset:
                item["seq"] = seq + seq_offset
    elif label == "POST /api/collectd":
        for item in body if isinstance(body, list) else []:
            if isinstance(item, dict) and "host" in item:
                item["host"] = device
    elif isinstance(body, dict) and "node_id" in body:
        body["node_id"] = device
    return body


def _send(
    campaign: Campaign, case: Any, caller: tuple[str, str], knobs: tuple[int, int, int]
) -> None:
    """One request: aim it, send it (maybe gzip'd or oversized), check it, book it."""
    label = case.operation.label
    kind, name = caller
    aim, encoding, header = knobs
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    is_write = label in WRITES
    if is_write and positive and kind == "device" and aim < 80:
        # Half of the aimed batches get seqs no earlier request used: new readings to store.
        offset = (campaign.requests + 1) * 1_000_000 if aim < 40 else 0
        case.body = _aim(case.body, label, name, offset)
        if case.headers and "X-Beam-Device" in case.headers:
            if header < 50:
                case.headers["X-Beam-Device"] = name
            else:
                del case.headers["X-Beam-Device"]
    elif label.startswith("GET /api/nodes/{node_id}") and positive and aim < 50:
        # Generated ids are never known nodes: half the time, ask for one that is.
        case.path_parameters = {"node_id": sorted(DEVICES)[aim % len(DEVICES)]}
    kwargs = case.as_transport_kwargs(base_url=campaign.served.url)
    headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
    token = _token_of(kind, name)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # A fresh connection per request: a kept-alive one that gunicorn closes after its idle
    # keep-alive (2 s; a busy machine's hypothesis pauses are longer) would race the next
    # POST, which requests does not retry, and the campaign would fail on the client's side.
    headers["Connection"] = "close"
    kwargs["headers"] = headers
    sent_body = kwargs.get("json")
    if is_write and "json" in kwargs and encoding < 15:
        raw = json.dumps(kwargs.pop("json"), allow_nan=False).encode()
        kwargs["data"] = raw
        if encoding < 10:  # gzip, as agents may send it
            kwargs["data"] = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        elif positive:  # valid JSON, but over max_body_bytes: 413, nothing stored
            kwargs["data"] = raw + b" " * (MAX_BODY_BYTES + 1 - len(raw) + 16)
        headers.setdefault("Content-Type", "application/json")
    response = campaign.session.request(**kwargs, timeout=60)
    campaign.statuses[response.status_code] += 1
    campaign.per_operation[label] += 1
    campaign.outcomes[label, response.status_code] += 1
    if label == "POST /api/readings" and sent_body is not None:
        answer = response.json() if response.status_code < 300 else {}
        campaign.ledger.record(sent_body, response.status_code, answer)
    elif label == "POST /api/telemetry" and 200 <= response.status_code < 300:
        campaign.heartbeats_ok += 1
    elif label == "POST /api/collectd" and 200 <= response.status_code < 300:
        accepted = response.json().get("accepted")
        campaign.collectd_accepted += accepted if isinstance(accepted, int) else 0
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            key = f"{label} {response.status_code}: {failure.title}"
            if key not in campaign.failures:
                campaign.failures[key] = f"{failure.title}\n{failure.message}\n{str(group)[-2000:]}"


def run_operation(campaign: Campaign, operation: Any, count: int, run_seed: int) -> None:
    """Up to `count` requests for one operation, half positive and half negative cases."""
    label = operation.label
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    callers = WRITE_CALLERS if label in WRITES else READ_CALLERS
    percent = st.integers(0, 99)
    knobs = st.tuples(percent, percent, percent)
    start = campaign.per_operation[label]

    @seed(run_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, caller=st.sampled_from(callers), knob=knobs)
    def one(case: Any, caller: tuple[str, str], knob: tuple[int, int, int]) -> None:
        if campaign.per_operation[label] - start < count:
            _send(campaign, case, caller, knob)

    one()


def operations() -> dict[str, Any]:
    """The shipped description's operations by label (METHOD /path)."""
    text = resources.files("beam_receiver").joinpath("openapi.json").read_text("utf-8")
    schema = schemathesis.openapi.from_dict(json.loads(text))
    found = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        found[operation.label] = operation
    return found


def run_campaign(
    served: ReceiverProcess, total: int, run_seed: int, progress: Callable[[str], None] = print
) -> Campaign:
    """`total` requests or more, spread by WEIGHTS; writes top up what reads could not use."""
    campaign = Campaign(served)
    ops = operations()
    missing = set(WEIGHTS) ^ set(ops)
    assert not missing, f"WEIGHTS and the description differ: {sorted(missing)}"
    weight_sum = sum(WEIGHTS.values())
    for label, weight in WEIGHTS.items():
        run_operation(campaign, ops[label], max(1, total * weight // weight_sum), run_seed)
        progress(f"{label}: {campaign.per_operation[label]} requests")
    round_number = 0
    while campaign.requests < total:  # a small operation ran out of distinct cases
        round_number += 1
        label = WRITES[round_number % len(WRITES)]
        run_operation(campaign, ops[label], total - campaign.requests, run_seed + round_number)
    return campaign


@dataclass
class Verdict:
    """The database compared with the ledger, after the receiver has stopped."""

    rows: int
    partial_writes: list[str]
    integrity: str
    telemetry_rows: int


def verify_database(campaign: Campaign) -> Verdict:
    with sqlite3.connect(campaign.served.database) as connection:
        pairs = set(connection.execute("SELECT device_id, seq FROM readings WHERE seq > 0"))
        collectd_rows = connection.execute("SELECT COUNT(*) FROM readings WHERE seq < 0")
        collectd_rows = collectd_rows.fetchone()[0]
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        telemetry_rows = connection.execute("SELECT COUNT(*) FROM telemetry_events").fetchone()[0]
    connection.close()
    ledger = campaign.ledger
    problems = list(ledger.mismatches)
    if ledger.accepted_total != len(pairs):
        problems.append(f"sum of accepted {ledger.accepted_total} != {len(pairs)} rows")
    unacknowledged = pairs - ledger.stored
    if unacknowledged:
        problems.append(f"{len(unacknowledged)} stored readings no 2xx answer reported")
    lost = ledger.stored - pairs
    if lost:
        problems.append(f"{len(lost)} acknowledged readings are not stored")
    from_rejected = (ledger.rejected - ledger.stored) & pairs
    if from_rejected:
        problems.append(f"{len(from_rejected)} readings of rejected batches were stored")
    if collectd_rows != campaign.collectd_accepted:
        problems.append(
            f"{collectd_rows} collectd readings stored, {campaign.collectd_accepted} accepted"
        )
    if telemetry_rows != campaign.heartbeats_ok:
        problems.append(
            f"{telemetry_rows} heartbeats stored, {campaign.heartbeats_ok} acknowledged"
        )
    return Verdict(len(pairs) + collectd_rows, problems, integrity, telemetry_rows)


def summary(campaign: Campaign, verdict: Verdict, seconds: float, run_seed: int) -> str:
    """The one line the run prints."""
    codes = " ".join(f"{code}={n}" for code, n in sorted(campaign.statuses.items()))
    server_errors = sum(n for code, n in campaign.statuses.items() if code >= 500)
    return (
        f"fuzz: {campaign.requests} requests in {seconds:.0f} s (seed {run_seed}):"
        f" {codes}; 5xx={server_errors}; partial writes={len(verdict.partial_writes)};"
        f" readings stored={verdict.rows} (sum of accepted"
        f" {campaign.ledger.accepted_total + campaign.collectd_accepted});"
        f" readings in refused requests={len(campaign.ledger.rejected - campaign.ledger.stored)};"
        f" check failures={len(campaign.failures)}; integrity_check={verdict.integrity}"
    )


def per_operation(campaign: Campaign) -> str:
    """One line per operation: its requests and their status codes."""
    lines = []
    for label, count in campaign.per_operation.most_common():
        codes = sorted((code, n) for (name, code), n in campaign.outcomes.items() if name == label)
        lines.append(f"  {label}: {count} ({' '.join(f'{code}={n}' for code, n in codes)})")
    return "\n".join(lines)

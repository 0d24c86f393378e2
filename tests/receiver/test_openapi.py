"""The shipped OpenAPI description: served without auth, and in step with the app's routes.

The route test is what keeps the description from drifting: a new route that is not
described, or a described path the app does not have, fails it.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema_rs
import schemathesis
from schemathesis.core.result import Ok

from beam_receiver import fleet
from beam_receiver.validation import (
    READING_FIELDS,
    READING_OPTIONAL,
    REGISTRATION_FIELDS,
    TELEMETRY_FIELDS,
)

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.responses import assert_error

# Dashboard pages and static files are HTML for people, not the API.
UNDESCRIBED_BLUEPRINTS = ("dashboard",)
UNDESCRIBED_ENDPOINTS = ("static",)
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Status codes the protocol names for each kind of endpoint.
WRITE_CODES = {"200", "400", "401", "403", "413", "415", "503"}
READ_CODES = {"200", "400", "401", "403", "503"}


def shipped() -> dict[str, Any]:
    text = resources.files("beam_receiver").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def described_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def app_operations(receiver: Receiver) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) of every API route in the app's url_map."""
    found = set()
    for rule in receiver.app.url_map.iter_rules():
        if rule.endpoint in UNDESCRIBED_ENDPOINTS:
            continue
        if rule.endpoint.split(".")[0] in UNDESCRIBED_BLUEPRINTS:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            found.add((method, path))
    return found


def schema_validator(document: dict[str, Any], name: str) -> Any:
    """A validator for one component schema, resolving $refs within the document."""
    wrapper = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.validator_for(wrapper)


def test_every_route_is_described_and_every_described_path_exists(receiver: Receiver) -> None:
    described = described_operations(shipped())
    routes = app_operations(receiver)
    assert routes - described == set(), "routes missing from beam_receiver/openapi.json"
    assert described - routes == set(), "described in openapi.json but not in the app"
    # The test would pass vacuously on an empty map; these must be among them.
    assert {("POST", "/api/readings"), ("GET", "/api/nodes/{node_id}")} <= routes


def test_openapi_json_is_served_without_a_token_and_is_the_shipped_file(
    receiver: Receiver,
) -> None:
    response = receiver.client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == shipped()
    assert response.headers["X-Request-ID"]


def test_description_loads_in_schemathesis_and_names_the_protocols_status_codes() -> None:
    document = shipped()
    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document)
    labels = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation schemathesis cannot use
        operation = result.ok()
        labels.add(operation.label)
        codes = set(operation.definition.raw["responses"])
        if operation.method.upper() == "POST":
            assert codes >= WRITE_CODES, operation.label
            assert operation.definition.raw["security"] == [{"deviceToken": []}]
        elif operation.path.startswith("/api/") and operation.path != "/api/openapi.json":
            assert codes >= READ_CODES, operation.label
            assert {"operatorToken": []} in operation.definition.raw["security"]
    assert len(labels) == len(described_operations(document))
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message", "details"]


def test_body_schemas_name_exactly_the_fields_validation_knows() -> None:
    schemas = shipped()["components"]["schemas"]
    assert set(schemas["Reading"]["properties"]) == set(READING_FIELDS + READING_OPTIONAL)
    assert set(schemas["ReadingBatch"]["properties"]) == {"readings", *READING_OPTIONAL}
    assert set(schemas["Reading"]["required"]) == set(READING_FIELDS)
    assert set(schemas["Heartbeat"]["properties"]) == set(TELEMETRY_FIELDS)
    assert set(schemas["Registration"]["properties"]) == set(REGISTRATION_FIELDS)
    node = fleet.summarize_node("n", None, None, False, 30, 0.0)
    assert set(schemas["Node"]["required"]) == set(node)
    assert set(schemas["Node"]["properties"]) == set(node)


def test_real_answers_match_the_described_schemas(receiver: Receiver, make_reading: Any) -> None:
    """A stored batch, a read page, a node and a 400 validate against their schemas."""
    document = shipped()
    reading = make_reading(1)
    assert schema_validator(document, "Reading").is_valid(reading)
    assert not schema_validator(document, "Reading").is_valid({**reading, "seq": 0})
    assert not schema_validator(document, "Reading").is_valid({**reading, "extra": 1})
    assert receiver.post_readings({"readings": [reading]}).get_json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    page = receiver.get("/api/readings").get_json()
    assert schema_validator(document, "StoredReading").is_valid(page["readings"][0])
    heartbeat = {"node_id": DEVICE, "timestamp": "2026-02-15T19:06:00Z", "metrics": {}}
    assert schema_validator(document, "Heartbeat").is_valid(heartbeat)
    assert (
        receiver.client.post(
            "/api/telemetry", json=heartbeat, headers=receiver.headers()
        ).status_code
        == 200
    )
    node = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert schema_validator(document, "Node").is_valid(node), node
    bad = assert_error(receiver.post_readings({**reading, "seq": "x"}), 400, "invalid_body")
    assert schema_validator(document, "Error").is_valid(bad)

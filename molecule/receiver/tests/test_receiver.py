"""What beam.fleet.receiver leaves on a node, read from the node and through its API."""

import json
import os
from pathlib import Path

import pytest

from conftest import MAX_EXPOSURE, unit_exposure

# pi-roof is declared in the inventory but not deployed: test only the receiver node.
testinfra_hosts = ["ansible://beam-mol-receiver"]

SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"
BASE = "http://127.0.0.1:8000"

# Runs on the node: python3 is there, curl is not.
HTTP = r"""
import json, sys, urllib.request, urllib.error
method, url, token, body = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() if body else None)
request.add_header("Content-Type", "application/json")
if token:
    request.add_header("Authorization", "Bearer " + token)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(json.dumps({"status": answer.status, "body": answer.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""


def call(host, method, path, token="", body=None):
    command = host.run(
        "python3 -c %s %s %s %s %s",
        HTTP,
        method,
        BASE + path,
        token,
        json.dumps(body) if body is not None else "",
    )
    assert command.rc == 0, command.stderr
    answer = json.loads(command.stdout)
    try:
        answer["json"] = json.loads(answer["body"])
    except ValueError:
        answer["json"] = None
    return answer


def secret(kind, name):
    return (SECRETS / kind / name).read_text().strip()


def test_unit_is_enabled_and_running(host):
    service = host.service("beam-receiver.service")
    assert service.is_enabled
    assert service.is_running
    # gunicorn on loopback only; nginx with TLS is the one listener others reach
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.service("nginx.service").is_running
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert not host.socket("tcp://0.0.0.0:80").is_listening


TLS_GET = r"""
import json, ssl, sys, urllib.request
url, ca, version = sys.argv[1:4]
context = ssl.create_default_context(cafile=ca)
if version:
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
try:
    with urllib.request.urlopen(url, timeout=10, context=context) as answer:
        print(json.dumps({"status": answer.status, "hsts": answer.headers.get("Strict-Transport-Security")}))
except Exception as error:
    print(json.dumps({"error": type(error).__name__ + ": " + str(error)}))
"""


def test_nginx_serves_tls_with_the_fleet_ca_only(host):
    ca = "/etc/beam/tls/ca.crt"
    assert host.file("/etc/beam/tls/receiver.key").mode == 0o600
    assert host.file("/etc/beam/tls/receiver.key").user == "root"
    answer = json.loads(host.run("python3 -c %s %s %s %s", TLS_GET, "https://127.0.0.1/healthz", ca, "").stdout)
    assert answer.get("status") == 200, answer
    tls12 = json.loads(host.run("python3 -c %s %s %s %s", TLS_GET, "https://localhost/healthz", ca, "TLSv1_2").stdout)
    assert tls12.get("status") == 200, tls12
    # the system store does not know the fleet CA: an agent without ca_file is refused
    system = json.loads(
        host.run("python3 -c %s %s %s %s", TLS_GET, "https://127.0.0.1/healthz", "/etc/ssl/certs/ca-certificates.crt", "").stdout
    )
    assert "CERTIFICATE_VERIFY_FAILED" in system.get("error", ""), system
    # an address the certificate does not carry (the container's own IP) is refused too
    address = host.run("hostname -i").stdout.split()[0]
    other = json.loads(host.run("python3 -c %s %s %s %s", TLS_GET, f"https://{address}/healthz", ca, "").stdout)
    assert "mismatch" in other.get("error", ""), other


def test_unit_is_hardened(host):
    assert unit_exposure(host, "beam-receiver.service") <= MAX_EXPOSURE


def test_runs_as_the_service_user(host):
    users = host.run("ps -o user= -C beam-receiver,gunicorn,python3 --no-headers").stdout
    assert "beam-rec" in users  # ps truncates long user names
    assert "root" not in users.split()


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/etc/beam/receiver.toml", "root", "beam-receiver", 0o640),
        ("/etc/beam/receiver-tokens.toml", "beam-receiver", "beam-receiver", 0o600),
        ("/etc/beam/receiver-nodes.toml", "root", "beam-receiver", 0o640),
        ("/var/lib/beam-receiver", "beam-receiver", "beam-receiver", 0o750),
    ],
)
def test_files_and_modes(host, path, owner, group, mode):
    item = host.file(path)
    assert item.exists
    assert (item.user, item.group, item.mode) == (owner, group, mode)


def test_tokens_file_holds_hashes_only(host):
    tokens = host.file("/etc/beam/receiver-tokens.toml").content_string
    assert secret("tokens", "pi-roof") not in tokens
    assert secret("operators", "ops") not in tokens
    assert '"pi-roof" = "sha256:' in tokens
    assert '"admin" = "pbkdf2:sha256:' in tokens


def test_healthz(host):
    assert call(host, "GET", "/healthz")["status"] == 200


def test_expected_agent_is_listed_offline(host):
    answer = call(host, "GET", "/api/nodes", secret("operators", "ops"))
    assert answer["status"] == 200, answer
    nodes = answer["json"]["nodes"] if isinstance(answer["json"], dict) else answer["json"]
    by_id = {node["node_id"]: node for node in nodes}
    assert by_id["pi-roof"]["status"] == "offline"


def test_device_token_from_the_controller_is_accepted(host):
    reading = {
        "device_id": "pi-roof",
        "sensor": "probe",
        "sensor_type": "virtual",
        "payload": {"value": 1.5},
        "timestamp": "2026-01-01T00:00:00.000Z",
        "seq": 1,
    }
    accepted = call(host, "POST", "/api/readings", secret("tokens", "pi-roof"), reading)
    assert accepted["status"] == 200, accepted
    assert accepted["json"]["accepted"] + accepted["json"]["duplicates"] == 1
    refused = call(host, "POST", "/api/readings", "not-a-token", reading)
    assert refused["status"] == 401


def test_operator_api_refuses_no_token(host):
    assert call(host, "GET", "/api/nodes")["status"] == 401


TLS_REQUEST = r"""
import json, ssl, sys, urllib.request, urllib.error
method, url, token, count = sys.argv[1:5]
context = ssl.create_default_context(cafile="/etc/beam/tls/ca.crt")
answers = []
for _ in range(int(count)):
    request = urllib.request.Request(url, method=method, data=b"username=admin&password=wrong" if method == "POST" else None)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            answers.append({"status": answer.status, "headers": dict(answer.headers)})
    except urllib.error.HTTPError as error:
        answers.append({"status": error.code, "headers": dict(error.headers)})
print(json.dumps(answers))
"""


def tls_requests(host, method, path, token="", count=1):
    command = host.run("python3 -c %s %s %s %s %s", TLS_REQUEST, method, "https://localhost" + path, token, str(count))
    assert command.rc == 0, command.stderr
    return json.loads(command.stdout)


def test_through_nginx_metrics_need_an_operator_and_every_answer_is_hardened(host):
    closed = tls_requests(host, "GET", "/metrics")[0]
    assert closed["status"] == 401
    opened = tls_requests(host, "GET", "/metrics", secret("operators", "ops"))[0]
    assert opened["status"] == 200
    for answer in (closed, opened, tls_requests(host, "GET", "/healthz")[0]):
        assert answer["headers"].get("X-Content-Type-Options") == "nosniff"
        assert answer["headers"].get("Strict-Transport-Security", "").startswith("max-age=")
        assert "Server" not in answer["headers"] or "nginx/" not in answer["headers"]["Server"]


def test_through_nginx_login_attempts_are_throttled_with_retry_after(host):
    answers = tls_requests(host, "POST", "/login", count=20)
    statuses = [answer["status"] for answer in answers]
    assert 429 in statuses, statuses
    throttled = next(answer for answer in answers if answer["status"] == 429)
    assert int(throttled["headers"]["Retry-After"]) > 0


def test_alerting_rules_were_installed_for_prometheus_and_pass_promtool():
    """beam_receiver_prometheus_rules_dir: the shipped rules, byte for byte, checked there."""
    import os
    import subprocess
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[3] / (
        "collections/ansible_collections/beam/fleet/roles/receiver/files/prometheus/beam-fleet-rules.yml"
    )
    installed = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "prometheus-rules/beam-fleet-rules.yml"
    assert installed.read_bytes() == shipped.read_bytes()
    checked = subprocess.run(["promtool", "check", "rules", str(installed)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""A renewed server certificate: proven from an agent's side before nginx serves it, no seq lost.

receiver.yml runs with beam_pki_renew_days above the certificate's whole life, so the
controller issues a new one. First with the agent's CA path made wrong (-e): the proof fails,
the run names the receiver, and nginx keeps serving the old certificate. Then as it is: the
agent proves the new certificate, nginx reloads it, and every agent's seqs stay 1..n.
"""

import re
import time

from conftest import FLEET_AGENTS, operator_playbook, stored_seqs

AGENTS = list(FLEET_AGENTS.values())
RECEIVER = "beam-mol-fleet-rx"
testinfra_hosts = ["ansible://" + RECEIVER]

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SERVED = r"""
import ssl
print(ssl.get_server_certificate(("127.0.0.1", 443)).strip())
"""


def receiver_playbook(*extra):
    return operator_playbook("receiver", "-e", "beam_pki_renew_days=400", *extra)


def served(host):
    """The certificate nginx presents now, and the one in its TLS directory (PEM)."""
    presented = host.run("python3 -c %s", SERVED)
    assert presented.rc == 0, presented.stderr
    on_disk = host.file("/etc/beam/tls/receiver.crt").content_string.strip()
    return presented.stdout.strip(), on_disk


def test_a_renewed_certificate_is_proven_by_an_agent_and_served_without_a_gap(host):
    before, before_file = served(host)
    assert before == before_file
    counts = {device: len(stored_seqs(host, device)) for device in AGENTS}

    refused = receiver_playbook("-e", "beam_agent_ca_file=/etc/beam/not-the-fleet-ca.crt")
    assert refused.returncode != 0
    # Plain text: no color codes, the callback's folding undone; ansible-core 2.19 prints the
    # failed task's message on stdout and its [ERROR] summary on stderr.
    said = " ".join(ANSI.sub("", refused.stdout + refused.stderr).split())
    assert "would not trust the new server certificate" in said
    assert "KEEPS SERVING THE CURRENT CERTIFICATE" in said
    assert served(host) == (before, before_file)

    proven = receiver_playbook()
    assert proven.returncode == 0, proven.stdout[-3000:]
    after, after_file = served(host)
    assert after == after_file
    assert after != before

    time.sleep(15)  # several push intervals through the new certificate
    for device in AGENTS:
        seqs = stored_seqs(host, device)
        assert len(seqs) > counts[device], device
        assert sorted(seqs) == list(range(1, max(seqs) + 1)), device

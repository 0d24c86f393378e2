"""Slow and idle clients against the deployed receiver: nginx holds them, gunicorn never sees them.

From the controller, 250 connections open TCP and send nothing, and 250 finish the TLS
handshake and then trickle a request header one byte every two seconds (slowloris). While
they hang on, normal TLS requests must still be answered; their p99 is printed (a figure,
not a timed assertion). nginx must then drop the slow ones after its client timeout.
"""

import socket
import ssl
import statistics
import time

from conftest import SECRETS

RECEIVER = "beam-mol-fleet-rx"
testinfra_hosts = ["ansible://" + RECEIVER]

CA = SECRETS / "pki" / "ca.crt"
IDLE = 250
TRICKLING = 250
NORMAL = 60


def tls_context():
    context = ssl.create_default_context(cafile=str(CA))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def get_healthz(address, context):
    """One whole GET /healthz over a new TLS connection; (status, seconds)."""
    started = time.monotonic()
    with socket.create_connection((address, 443), timeout=15) as raw:
        # the certificate names localhost, not the container's address on the docker network
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def closed_by_peer(sock):
    """True when the server has closed the connection (a read returns EOF or a reset)."""
    sock.setblocking(False)
    try:
        sock.recv(4096)  # EOF (b""), or nginx's last words before it closes
    except (BlockingIOError, ssl.SSLWantReadError):
        return False  # still open, nothing to read
    except OSError:
        return True  # reset, or TLS torn down
    return True


def test_slow_and_idle_clients_do_not_stop_the_receiver(host):
    address = host.run("hostname -i").stdout.split()[0]
    context = tls_context()
    idle = [socket.create_connection((address, 443), timeout=15) for _ in range(IDLE)]
    trickling = []
    for _ in range(TRICKLING):
        tls = context.wrap_socket(socket.create_connection((address, 443), timeout=15), server_hostname="localhost")
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        trickling.append(tls)
    try:
        statuses, seconds = [], []
        for index in range(NORMAL):
            status, took = get_healthz(address, context)
            statuses.append(status)
            seconds.append(took)
            if index % 10 == 0:  # keep the slowloris clients trickling meanwhile
                for tls in trickling:
                    try:
                        tls.sendall(b"X")
                    except OSError:
                        pass
            time.sleep(0.1)
        p50 = statistics.median(seconds)
        p99 = sorted(seconds)[int(0.99 * (len(seconds) - 1))]
        print(f"\n{IDLE} idle + {TRICKLING} trickling connections held: {NORMAL} normal TLS requests,"
              f" p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms")
        assert statuses == [200] * NORMAL
        # nginx's client timeout (10 s by default) ends both kinds without any answer from gunicorn
        time.sleep(14)
        closed_idle = sum(closed_by_peer(sock) for sock in idle)
        closed_trickling = sum(closed_by_peer(tls) for tls in trickling)
        print(f"closed by nginx after its client timeout: {closed_idle}/{IDLE} idle, "
              f"{closed_trickling}/{TRICKLING} trickling")
        assert closed_idle >= 0.95 * IDLE
        assert closed_trickling >= 0.95 * TRICKLING
        assert get_healthz(address, context)[0] == 200
    finally:
        for sock in idle + trickling:
            sock.close()

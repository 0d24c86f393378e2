"""HTTPS for tests: a CA and server certificates made with the `openssl` command line (as the
collection's pki role makes them: P-256 keys, a CA limited to signing, a server certificate
for its names), and `TLSProxy`, a TLS front for a plain HTTP server on 127.0.0.1 (what nginx
is to the receiver). Standard library only, so the agent's tests use it on Python 3.9 too."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# Only what `-config` needs: openssl must not read the system's openssl.cnf, whose defaults
# (and extension sections) differ between distributions.
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {common_name}
[ext]
{extensions}
"""
CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
SERVER_EXTENSIONS = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {names}
"""


@dataclass(frozen=True)
class CertificateAuthority:
    name: str
    cert: Path  # PEM: what an agent's ca_file points at
    key: Path


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _config(path: Path, common_name: str, extensions: str) -> Path:
    path.write_text(OPENSSL_CONFIG.format(common_name=common_name, extensions=extensions))
    return path


def make_ca(directory: Path, name: str = "beam-fleet test CA") -> CertificateAuthority:
    """A self-signed CA in directory/<stem>.crt and .key (the stem from `name`)."""
    stem = "-".join(name.lower().split())
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    config = _config(directory / f"{stem}.cnf", name, CA_EXTENSIONS)
    openssl(
        "req", "-x509", "-new", "-config", str(config), "-extensions", "ext",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "30", "-sha256",
    )  # fmt: skip
    return CertificateAuthority(name, cert, key)


def issue_server_certificate(
    ca: CertificateAuthority, directory: Path, names: Sequence[str], stem: str = "server"
) -> ServerCertificate:
    """A server certificate signed by `ca` for `names` (host names and IP addresses)."""
    alt_names = ", ".join(f"IP:{name}" if _is_address(name) else f"DNS:{name}" for name in names)
    config = _config(directory / f"{stem}.cnf", names[0], SERVER_EXTENSIONS.format(names=alt_names))
    cert, key, request = (directory / f"{stem}.{ext}" for ext in ("crt", "key", "csr"))
    openssl(
        "req", "-new", "-config", str(config), "-newkey", "ec",
        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", str(int.from_bytes(stem.encode()[:8].ljust(8, b"\0"), "big")),
        "-days", "30", "-sha256", "-extfile", str(config), "-extensions", "ext",
        "-out", str(cert),
    )  # fmt: skip
    return ServerCertificate(cert, key)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FleetPki:
    ca: CertificateAuthority  # the fleet's CA: what an agent's ca_file should hold
    other_ca: CertificateAuthority  # a CA that signed nothing the receiver serves
    server: ServerCertificate  # the receiver's, from the fleet CA, for localhost and 127.0.0.1
    wrong_name: ServerCertificate  # from the fleet CA, but for another host name only


def make_fleet_pki(directory: Path) -> FleetPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "beam-fleet test CA")
    return FleetPki(
        ca=ca,
        other_ca=make_ca(directory, "some other CA"),
        server=issue_server_certificate(ca, directory, ["localhost", "127.0.0.1"]),
        wrong_name=issue_server_certificate(
            ca, directory, ["receiver.example"], stem="receiver-example"
        ),
    )


class TLSProxy:
    """HTTPS on 127.0.0.1 in front of a plain HTTP server (`upstream_port`), as nginx is in
    front of the receiver: every connection's TLS handshake with `certificate`, then its bytes
    both ways. A client that refuses the certificate never reaches the upstream server.

        with TLSProxy(certificate, receiver.port) as proxy:
            ... proxy.url("localhost"), proxy.handshakes, proxy.refused
    """

    def __init__(self, certificate: ServerCertificate, upstream_port: int) -> None:
        self.context = certificate.context()
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.handshakes = 0  # completed TLS handshakes
        self.refused = 0  # handshakes that failed (the client did not accept the certificate)
        self.sockets: set[socket.socket] = set()
        self.thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"

    def start(self) -> TLSProxy:
        self.thread = threading.Thread(target=self._accept_loop, name="tls-proxy", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        self.listener.close()
        with self.lock:
            open_sockets = list(self.sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> TLSProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.refused += 1
            client.close()
            return
        with self.lock:
            self.handshakes += 1
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            tls.close()
            return
        with self.lock:
            self.sockets.update((tls, upstream))
        backward = threading.Thread(target=_pump, args=(upstream, tls), daemon=True)
        backward.start()
        _pump(tls, upstream)
        backward.join(30)
        with self.lock:
            self.sockets.difference_update((tls, upstream))
        for sock in (tls, upstream):
            sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until `source` ends, then end `target`'s writing side (or close it)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        if isinstance(target, ssl.SSLSocket):  # TLS has no half-close: end both ways, which
            socket.socket.shutdown(target, socket.SHUT_RDWR)  # also wakes the other pump
        else:
            target.shutdown(socket.SHUT_WR)

"""A real PostgreSQL server for tests and benches: the distribution's binaries (Debian 12:
PostgreSQL 15 in /usr/lib/postgresql/15/bin), a cluster in a temporary directory, listening
on a free loopback port, with password (SCRAM) authentication as in production.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (the
Debian package creates it), else as `nobody`. Its files stay in their own temporary
directory, owned by that user; stop() removes them. Settings are for tests (no fsync): never
copy them to a real server.

Missing binaries are an error with a clear message, never a skip: the PostgreSQL backend
is tested on every run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psycopg

from tests.support.files import write_private
from tests.support.waiting import free_port

PG_BIN = Path(os.environ.get("BEAM_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "beam"
PASSWORD = "beam-test-password"
TEMPLATE = "beam_template"
SERVER_SETTINGS = (
    "max_connections=300",
    "unix_socket_directories=",
    "listen_addresses=127.0.0.1",
)
# For a test cluster only: nothing here needs to survive a crash. Benches run without them,
# with the durability of a real server (each commit flushed, like SQLite's FULL).
NOT_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _run_as() -> list[str]:
    """The command prefix that runs the server as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user to run as")


def _owner() -> Optional[tuple[int, int]]:
    prefix = _run_as()
    if not prefix:
        return None
    entry = pwd.getpwnam(prefix[2])
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresServer:
    """One running cluster; `database(name)` gives the URL a receiver.toml takes."""

    directory: Path
    port: int
    password_file: Path
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str) -> str:
        """The URL of one database, without the password (that is in password_file)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(database), password=PASSWORD, autocommit=True)

    def create_database(self, template: Optional[str] = TEMPLATE) -> str:
        """A fresh database (copied from the migrated template: a few milliseconds)."""
        name = f"beam_test_{os.getpid()}_{next(self._names)}"
        source = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        with self.connect() as admin:
            admin.execute(f"CREATE DATABASE {name}{source}")
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_run_as(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def server_pids(self) -> list[int]:
        """The postmaster and its children (for benches that count the server's CPU)."""
        import psutil

        master = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        return [master.pid] + [child.pid for child in master.children(recursive=True)]

    def stop(self) -> None:
        """Stop the server (fast: sessions are cut) and remove its files."""
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", "fast", "-w")
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(template_migrated: bool = True, durable: bool = False) -> PostgresServer:
    """initdb and start a cluster; with template_migrated, TEMPLATE holds the receiver's
    schema, so create_database() is a migrated database at once. durable keeps
    PostgreSQL's default fsync and synchronous_commit (for benches)."""
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        raise RuntimeError(
            f"{initdb} not found: the receiver's PostgreSQL tests need PostgreSQL's server"
            " binaries (Debian: apt-get install postgresql-15; or set BEAM_PG_BIN to the"
            " directory holding initdb and pg_ctl)"
        )
    directory = Path(tempfile.mkdtemp(prefix="beam-postgres-"))
    owner = _owner()
    if owner is not None:
        os.chown(directory, *owner)
    cluster_password = directory / "initdb-password"
    cluster_password.write_text(PASSWORD + "\n")
    if owner is not None:
        os.chown(cluster_password, *owner)
    server = PostgresServer(
        directory,
        free_port(),
        write_private(Path(tempfile.mkdtemp(prefix="beam-pgpass-")) / "password", PASSWORD),
    )
    try:
        done = subprocess.run(
            [
                *_run_as(),
                str(initdb),
                "-D",
                str(server.data),
                "-U",
                USER,
                f"--pwfile={cluster_password}",
                "--auth=scram-sha-256",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        settings = SERVER_SETTINGS if durable else SERVER_SETTINGS + NOT_DURABLE
        options = " ".join(f"-c {setting}" for setting in settings)
        started = server.pg_ctl(
            "start", "-w", "-t", "60", "-l", str(server.log), "-o", f"-p {server.port} {options}"
        )
        if started.returncode != 0:
            log = server.log.read_text() if server.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}{started.stderr}{log}")
        if template_migrated:
            _make_template(server)
    except BaseException:
        server.stop()
        shutil.rmtree(server.password_file.parent, ignore_errors=True)
        raise
    return server


def _make_template(server: PostgresServer) -> None:
    from beam_receiver.storage.postgres import PostgresStorage

    with server.connect() as admin:
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    storage = PostgresStorage(server.url(TEMPLATE), password=PASSWORD)
    try:
        storage.migrate()
    finally:
        storage.close()


@contextlib.contextmanager
def running_postgres(durable: bool = False) -> Iterator[PostgresServer]:
    """A started cluster for the length of the block; always stopped and removed."""
    server = start_postgres(durable=durable)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.password_file.parent, ignore_errors=True)

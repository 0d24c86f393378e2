"""The receiver's storage: the only package that executes SQL.

`Storage` (base.py) is the contract and the logic every backend shares; `Database`
(sqlite.py) is the embedded SQLite default; `PostgresStorage` (postgres.py, imported only
when a postgresql:// database is configured, so SQLite needs no PostgreSQL driver) is the
other. The record types come from records.py, which imports no database module.
"""

from beam_receiver.storage.base import (
    ALREADY_STORED,
    INSERT_READING,
    LATEST_READINGS,
    LOWEST_SEQ,
    READING_COLUMNS,
    Session,
    Storage,
    WriteLock,
)
from beam_receiver.storage.records import (
    INT64_MAX,
    INT64_MIN,
    DashboardLogin,
    Heartbeat,
    InsertResult,
    LoginLimit,
    NewReading,
    Registration,
    SchemaTooNewError,
    json_path,
    payload_path,
)
from beam_receiver.storage.sqlite import (
    HEALTH_PROBE_BYTES,
    MIGRATIONS,
    SCHEMA_VERSION,
    SERIES,
    Database,
    connect,
    reading_index,
)

__all__ = [
    "ALREADY_STORED",
    "HEALTH_PROBE_BYTES",
    "INSERT_READING",
    "INT64_MAX",
    "INT64_MIN",
    "LATEST_READINGS",
    "LOWEST_SEQ",
    "MIGRATIONS",
    "READING_COLUMNS",
    "SCHEMA_VERSION",
    "SERIES",
    "DashboardLogin",
    "Database",
    "Heartbeat",
    "InsertResult",
    "LoginLimit",
    "NewReading",
    "Registration",
    "SchemaTooNewError",
    "Session",
    "Storage",
    "WriteLock",
    "connect",
    "json_path",
    "payload_path",
    "reading_index",
]

"""`beam-receiver migrate-to-postgres`: copy a SQLite receiver's data into PostgreSQL.

Readings keep their (device_id, seq), timestamp and received_at, and are inserted with the
ingest path's ON CONFLICT DO NOTHING: a copy can be run again (after the SQLite receiver
was stopped, to pick up what came in during the first one) and stores nothing twice; an
agent that re-sends a reading the old receiver had stored gets it counted as a duplicate.
Nodes are copied as they are in SQLite; heartbeat events not yet in PostgreSQL are added.
Dashboard logins and login counts are not copied: users log in again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from beam_receiver.storage import Database, Storage

BATCH_ROWS = 5000


@dataclass(frozen=True)
class CopyResult:
    readings_read: int
    readings_new: int
    nodes: int
    telemetry_events_new: int


def copy_database(
    source: Database,
    target: Storage,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int, int], None] = lambda read, new: None,
) -> CopyResult:
    """Copy every reading, node and heartbeat event of source into target (migrated)."""
    read = new = 0
    after_id = 0
    while True:
        rows = source.readings_after(after_id, batch_rows)
        if not rows:
            break
        new += target.copy_readings(rows)
        read += len(rows)
        after_id = int(rows[-1][0])
        progress(read, new)
    nodes = source.node_table()
    target.copy_nodes(nodes)
    events = 0
    after_id = 0
    while True:
        event_rows = source.telemetry_after(after_id, batch_rows)
        if not event_rows:
            break
        events += target.copy_telemetry(event_rows)
        after_id = int(event_rows[-1][0])
    return CopyResult(read, new, len(nodes), events)

"""POST /api/collectd: collectd's write_http JSON, stored as readings of the token's device.

collectd (`LoadPlugin write_http`, `Format "JSON"`, `Header "Authorization: Bearer ..."`)
posts arrays of value lists and never retries. The mapping to readings is described in
beam_receiver.collectd; storage numbers them, since collectd sends no seq.
"""

from __future__ import annotations

from flask import Blueprint, g

from beam_receiver.api.ingest import WireFormat, ingest
from beam_receiver.auth import require_device
from beam_receiver.collectd import foreign_hosts, parse_value_lists, value_list_items

bp = Blueprint("collectd", __name__)

# collectd's format: a JSON array of value lists, each naming its device as `host`.
COLLECTD = WireFormat(
    items=value_list_items, foreign=foreign_hosts, parse=parse_value_lists, marks_seen=True
)


@bp.post("/api/collectd")
@require_device
def post_collectd() -> dict[str, int]:
    """Store every value list of the body, all or nothing; one reading per value list. The
    node is seen (in the fleet, with role collectd) even if it sends no heartbeat."""
    return ingest(COLLECTD, g.caller.name, "collectd")

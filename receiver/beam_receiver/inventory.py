"""The expected-node list: which nodes the inventory says exist, with their role and tags.

The Ansible role writes it from the inventory (the source of truth) as
`[nodes."<id>"] role = "agent", tags = {site = "..."}`. A node listed here that never
reported is offline; a node that reports but is not listed is unexpected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from beam_receiver.config import ConfigError, Problem, read_toml

NODE_KEYS = ("role", "tags")


@dataclass(frozen=True)
class ExpectedNode:
    node_id: str
    role: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)


def _tag_value(value: Any) -> Optional[str]:
    """Inventories write numbers and booleans as tags too; all become strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def parse_expected_nodes(data: dict[str, Any], path: Path) -> dict[str, ExpectedNode]:
    """Check the parsed file; every problem names its key."""
    problems: list[Problem] = []
    for key in sorted(set(data) - {"nodes"}):
        problems.append(Problem(key, 'unknown key (the file holds only [nodes."<id>"] tables)'))
    nodes_table = data.get("nodes", {})
    if not isinstance(nodes_table, dict):
        raise ConfigError(path, [*problems, Problem("nodes", "must be a table of node tables")])
    nodes: dict[str, ExpectedNode] = {}
    for node_id, entry in nodes_table.items():
        where = f"nodes.{node_id}"
        if not node_id.strip():
            problems.append(Problem(where, "a node id must not be empty"))
            continue
        if not isinstance(entry, dict):
            problems.append(Problem(where, "must be a table with role and tags"))
            continue
        for key in sorted(set(entry) - set(NODE_KEYS)):
            problems.append(Problem(f"{where}.{key}", "unknown key (known: role, tags)"))
        role = entry.get("role")
        if role is not None and not isinstance(role, str):
            problems.append(Problem(f"{where}.role", "must be a string"))
            role = None
        raw_tags = entry.get("tags", {})
        tags: dict[str, str] = {}
        if not isinstance(raw_tags, dict):
            problems.append(Problem(f"{where}.tags", "must be a table of strings"))
        else:
            for tag, value in raw_tags.items():
                text = _tag_value(value)
                if text is None:
                    problems.append(Problem(f"{where}.tags.{tag}", "must be a string or number"))
                else:
                    tags[tag] = text
        nodes[node_id] = ExpectedNode(node_id=node_id, role=role, tags=tags)
    if problems:
        raise ConfigError(path, problems)
    return nodes


def load_expected_nodes(path: Path) -> dict[str, ExpectedNode]:
    """Read the expected-node list; raises ConfigError naming each bad key and the file."""
    return parse_expected_nodes(read_toml(path), path)

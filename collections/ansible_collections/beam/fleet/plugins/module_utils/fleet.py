# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fleet inventory rules: one place that says what a valid beam fleet is.

Why here: the inventory is the source of truth for which nodes exist, what they run and
which sensors they carry. A mistake in it (two nodes sharing an id, a typo in a sensor
type, an agent with nowhere to push) must stop a run on the controller before any node
is touched, with one line per problem naming the host and the key. The fleet_validate
action plugin calls validate_fleet(); it is plain Python so unit tests can feed it any
inventory. Who may log in where is ssh_access.py's; validate_fleet() asks it per node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.beam.fleet.plugins.module_utils.sensor_types import (
    DEVICE_OPTIONS,
    SENSOR_TYPES,
)
from ansible_collections.beam.fleet.plugins.module_utils.ssh_access import check_ssh_access

ROLES = ("agent", "receiver", "database")
ARCHITECTURES = ("x86_64", "aarch64", "armv7l")
# The same rule the agent applies to device_id (beam_agent.config.DEVICE_ID_PATTERN).
NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SITE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
URL_PATTERN = re.compile(r"^https?://[^/\s]+")
# Keys of a [[sensor]] table that belong to the agent, not to the driver.
SENSOR_KEYS = ("name", "type", "driver", "interval_ms", "timeout_ms", "max_rate_hz")
SENSOR_KEY_KINDS = {"interval_ms": "int", "timeout_ms": "int", "max_rate_hz": "float"}
# Where agents reach a receiver by default: nginx with TLS on 443 (or plain HTTP on 80 where
# the inventory sets beam_receiver_tls: false).
DEFAULT_PORTS = {"https": 443, "http": 80}
# The receivers' PostgreSQL on a host with the database role (beam.fleet.database): its
# database, its one login (owner of that database and nothing else) and its port.
DATABASE_NAME = "beam"
DATABASE_USER = "beam_receiver"
DATABASE_PORT = 5432
POSTGRES_URL_PATTERN = re.compile(r"^postgres(ql)?://(?P<user>[^:@/\s]+)@(?P<host>[^:/\s?]+)(:[0-9]+)?/(?P<db>[^/?\s]+)(\?\S*)?$")

# The inventory variables a node is described by, and what each must be.
NODE_VARIABLES = (
    "beam_node_id",
    "beam_roles",
    "beam_site",
    "beam_arch",
    "beam_tags",
    "beam_sensors",
    "beam_receiver",
    "beam_receiver_url",
    "beam_receiver_port",
    "beam_receiver_tls",
    "beam_receiver_database_url",
    "ansible_host",
)

_KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "list": "a list",
    "dict": "a mapping",
}


def _is_kind(value, kind):
    """isinstance by the agent's rules: a boolean is not a number, an int is a float."""
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, dict)
    return False


def check_option(name, spec, value):
    """The problem with one driver option's value, or None when it is acceptable."""
    kind = spec["kind"]
    if value is None and not spec["required"] and spec["default"] is None:
        return None
    if not _is_kind(value, kind):
        return "must be %s, got %r" % (_KIND_NAMES.get(kind, kind), value)
    if spec.get("choices") is not None and value not in spec["choices"]:
        allowed = ", ".join(repr(choice) for choice in spec["choices"])
        return "must be one of %s, got %r" % (allowed, value)
    if spec.get("minimum") is not None and value < spec["minimum"]:
        return "must be at least %s, got %r" % (spec["minimum"], value)
    if spec.get("maximum") is not None and value > spec["maximum"]:
        return "must be at most %s, got %r" % (spec["maximum"], value)
    return None


def check_sensor(sensor, sensor_types=None):
    """Problems of one sensor table, each as (key, message); [] when it is valid.

    A sensor with an explicit `driver` ("module:Class") is a plugin the controller cannot
    know: only its agent-level keys are checked here; the node's `beam-agent check-config`
    checks the rest before the config is written.
    """
    types = SENSOR_TYPES if sensor_types is None else sensor_types
    problems = []
    if not isinstance(sensor, dict):
        return [("", "must be a mapping (one [[sensor]] table), got %r" % (sensor,))]
    name = sensor.get("name")
    if not isinstance(name, str) or not name:
        problems.append(("name", "is required (a non-empty string)"))
    sensor_type = sensor.get("type")
    if not isinstance(sensor_type, str) or not sensor_type:
        problems.append(("type", "is required (a non-empty string)"))
        return problems
    for key, kind in SENSOR_KEY_KINDS.items():
        if key in sensor:
            value = sensor[key]
            if not _is_kind(value, kind) or value <= 0:
                problems.append((key, "must be a positive %s, got %r" % (kind, value)))
    driver = sensor.get("driver")
    if driver is not None:
        if not isinstance(driver, str) or not re.match(r"^[\w.]+:\w+$", driver):
            problems.append(("driver", "must be 'package.module:Class', got %r" % (driver,)))
        return problems
    if sensor_type not in types:
        problems.append(
            ("type", "unknown sensor type %r (known: %s)" % (sensor_type, ", ".join(sorted(types))))
        )
        return problems
    specs = types[sensor_type]["options"]
    options = dict((k, v) for k, v in sensor.items() if k not in SENSOR_KEYS)
    for key in sorted(set(options) - set(specs)):
        problems.append((key, "unknown option for sensor type %r (options: %s)" % (sensor_type, ", ".join(sorted(specs)) or "none")))
    for key in sorted(specs):
        spec = specs[key]
        if key not in options:
            if spec["required"]:
                problems.append((key, "is required for sensor type %r" % sensor_type))
            continue
        message = check_option(key, spec, options[key])
        if message:
            problems.append((key, message))
    return problems


def sensor_devices(sensors):
    """The device nodes the sensors use: {"serial": [paths], "i2c": [paths]}, sorted.

    The agent role allows exactly these in the unit's DeviceAllow=, so a sensor that is
    not in the inventory cannot be opened by the agent.
    """
    found = {"serial": set(), "i2c": set()}
    for sensor in sensors or []:
        if not isinstance(sensor, dict):
            continue
        sensor_type = sensor.get("type")
        for option, kind in DEVICE_OPTIONS.get(sensor_type, {}).items():
            spec = SENSOR_TYPES.get(sensor_type, {}).get("options", {}).get(option, {})
            value = sensor.get(option, spec.get("default"))
            if value is None:
                continue
            if kind == "serial" and isinstance(value, str):
                found["serial"].add(value)
            elif kind == "i2c" and _is_kind(value, "int"):
                found["i2c"].add("/dev/i2c-%d" % value)
    return dict((kind, sorted(paths)) for kind, paths in found.items())


def receiver_scheme(node):
    """https unless the inventory sets beam_receiver_tls to false for this receiver."""
    return "http" if node.get("beam_receiver_tls") is False else "https"


def _address(node):
    """How the other hosts reach a node: its ansible_host, else its inventory name."""
    return node.get("ansible_host") or node["host"]


def _receiver_url(node):
    url = node.get("beam_receiver_url")
    if url:
        return str(url).rstrip("/")
    scheme = receiver_scheme(node)
    address = _address(node)
    port = node.get("beam_receiver_port")
    if port in (None, "", DEFAULT_PORTS[scheme]):
        return "%s://%s" % (scheme, address)
    return "%s://%s:%s" % (scheme, address, port)


def _check_node(node, problems):
    """Check one node's own variables; returns its normalised record."""
    host = node["host"]

    def fail(key, message):
        problems.append("%s: %s: %s" % (host, key, message))

    node_id = node.get("beam_node_id")
    if node_id is None:
        node_id = host
    if not isinstance(node_id, str) or not NODE_ID_PATTERN.match(node_id):
        fail("beam_node_id", "%r is not a valid node id (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)" % (node_id,))
    roles = node.get("beam_roles")
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, (list, tuple)) or not roles:
        fail("beam_roles", "is required: a list of %s" % " and/or ".join(ROLES))
        roles = []
    for role in roles:
        if role not in ROLES:
            fail("beam_roles", "unknown role %r (known: %s)" % (role, ", ".join(ROLES)))
    if len(set(roles)) != len(roles):
        fail("beam_roles", "lists a role twice: %s" % ", ".join(roles))
    site = node.get("beam_site")
    if not isinstance(site, str) or not SITE_PATTERN.match(site):
        fail("beam_site", "is required: a site name of letters, digits, '_' or '-', got %r" % (site,))
    arch = node.get("beam_arch")
    if arch not in ARCHITECTURES:
        fail("beam_arch", "must be one of %s, got %r" % (", ".join(ARCHITECTURES), arch))
    tags = node.get("beam_tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict) or any(
        not isinstance(k, str) or not isinstance(v, str) for k, v in tags.items()
    ):
        fail("beam_tags", "must map strings to strings, got %r" % (tags,))
        tags = {}
    sensors = node.get("beam_sensors")
    if sensors is None:
        sensors = []
    if not isinstance(sensors, (list, tuple)):
        fail("beam_sensors", "must be a list of sensor tables, got %r" % (sensors,))
        sensors = []
    if sensors and "agent" not in roles:
        fail("beam_sensors", "sensors are declared but the node has no agent role")
    seen = set()
    for index, sensor in enumerate(sensors):
        label = "beam_sensors[%d]" % index
        if isinstance(sensor, dict) and isinstance(sensor.get("name"), str):
            label = "%s (%s)" % (label, sensor["name"])
            if sensor["name"] in seen:
                fail(label + ".name", "duplicate sensor name %r" % sensor["name"])
            seen.add(sensor["name"])
        for key, message in check_sensor(sensor):
            fail("%s.%s" % (label, key) if key else label, message)
    url = node.get("beam_receiver_url")
    if url not in (None, "") and (not isinstance(url, str) or not URL_PATTERN.match(url)):
        fail("beam_receiver_url", "must be an http:// or https:// URL, got %r" % (url,))
    tls = node.get("beam_receiver_tls")
    if tls is not None and not isinstance(tls, bool):
        fail("beam_receiver_tls", "must be true or false, got %r" % (tls,))
    elif tls is not None and "receiver" not in roles:
        fail("beam_receiver_tls", "is set but the node has no receiver role")
    elif (
        "receiver" in roles
        and isinstance(url, str)
        and url.lower().startswith("http://")
        and receiver_scheme(node) == "https"
    ):
        # (an https:// URL with beam_receiver_tls: false is a TLS proxy of the operator's own)
        fail(
            "beam_receiver_url",
            "%r is plain HTTP but the receiver serves only HTTPS (beam_receiver_tls is true by "
            "default): use https://, or set beam_receiver_tls: false to serve plain HTTP" % (url,),
        )
    database_url = node.get("beam_receiver_database_url")
    if database_url not in (None, ""):
        if "receiver" not in roles:
            fail("beam_receiver_database_url", "is set but the node has no receiver role")
        elif not isinstance(database_url, str) or not POSTGRES_URL_PATTERN.match(database_url):
            # the URL is not echoed: a malformed one may hold the password that must not be there
            fail(
                "beam_receiver_database_url",
                "must be postgresql://USER@HOST[:PORT]/DATABASE with no password in it (the password "
                "goes in the secrets directory, database/<HOST>)",
            )
    return {
        "host": host,
        "node_id": node_id,
        "roles": list(roles),
        "site": site,
        "arch": arch,
        "tags": dict(tags),
        "sensors": list(sensors),
        "devices": sensor_devices(sensors),
        "receiver_host": None,
        "api_url": None,
    }


def validate_fleet(nodes, groups=None, today=None):
    """Check a whole fleet; returns (records keyed by inventory host, problems).

    `nodes` is a list of mappings holding `host` (the inventory hostname) and the node's
    NODE_VARIABLES and SSH_VARIABLES (and optionally `group_names`). Hosts without
    `beam_roles` are not fleet nodes and must be left out by the caller. `groups` maps the
    inventory's group names to their hosts (Ansible's `groups`); `today` (a date, UTC by
    default) decides which keys have expired. Every problem is reported, not only the
    first, so one run fixes them all.
    """
    problems = []
    records = {}
    by_host = {}
    if today is None:
        today = datetime.datetime.now(datetime.timezone.utc).date()
    known_groups = set(groups or {})
    for node in nodes:
        known_groups.update(node.get("group_names") or [])
    ssh_reported = set()
    for node in nodes:
        by_host[node["host"]] = node
        records[node["host"]] = _check_node(node, problems)
        member_of = set(node.get("group_names") or [])
        for group, hosts in (groups or {}).items():
            if node["host"] in (hosts or []):
                member_of.add(group)
        access, ssh_problems = check_ssh_access(node, known_groups, member_of, today)
        records[node["host"]]["ssh"] = access
        # The SSH declarations are fleet-wide (group_vars/all): say each problem once.
        for key, message in ssh_problems:
            if (key, message) not in ssh_reported:
                ssh_reported.add((key, message))
                problems.append("%s: %s: %s" % (node["host"], key, message))

    owners = {}
    for host in sorted(records):
        owners.setdefault(records[host]["node_id"], []).append(host)
    for node_id, hosts in sorted(owners.items(), key=lambda item: str(item[0])):
        if len(hosts) > 1:
            problems.append(
                "%s: beam_node_id: duplicate node id %r (also used by %s)"
                % (hosts[0], node_id, ", ".join(hosts[1:]))
            )

    receivers = sorted(h for h, r in records.items() if "receiver" in r["roles"])
    for host in receivers:
        node = by_host[host]
        scheme = receiver_scheme(node)
        records[host]["receiver_url"] = _receiver_url(node)
        # what nginx on the receiver serves, whatever name agents use to reach it
        records[host]["receiver_tls"] = scheme == "https"
        records[host]["receiver_port"] = node.get("beam_receiver_port") or DEFAULT_PORTS[scheme]
    _assign_databases(records, by_host, receivers, problems)
    pools = set(tuple(records[host]["receiver_pool"]) for host in receivers)
    for host in sorted(records):
        record = records[host]
        if "agent" not in record["roles"]:
            continue
        node = by_host[host]
        explicit_url = node.get("beam_receiver_url")
        target = node.get("beam_receiver")
        if target:
            if target not in records:
                problems.append("%s: beam_receiver: %r is not a host of this inventory" % (host, target))
            elif "receiver" not in records[target]["roles"]:
                problems.append("%s: beam_receiver: host %r has no receiver role" % (host, target))
            else:
                record["receiver_host"] = target
                record["api_url"] = records[target]["receiver_url"]
        elif explicit_url and "receiver" not in record["roles"]:
            record["api_url"] = str(explicit_url).rstrip("/")
        elif "receiver" in record["roles"]:
            record["receiver_host"] = host
            record["api_url"] = record["receiver_url"]
        elif len(pools) == 1:
            # one receiver, or several sharing one database behind the first one's address
            record["receiver_host"] = receivers[0]
            record["api_url"] = records[receivers[0]]["receiver_url"]
        elif not receivers:
            problems.append(
                "%s: beam_receiver: agent points at no receiver: the inventory has no host with "
                "the receiver role; add one, or set beam_receiver_url to an external receiver" % host
            )
        else:
            problems.append(
                "%s: beam_receiver: agent points at no receiver: set beam_receiver to one of %s"
                % (host, ", ".join(receivers))
            )
    return records, sorted(problems)


def _database_of(record):
    """What a receiver's pool is keyed by: the database host, else the external URL."""
    return record["database_host"] or record["database_url"]


def _assign_databases(records, by_host, receivers, problems):
    """Give each receiver its storage and its pool, and each database host its clients.

    A receiver stores into SQLite on its own disk unless the inventory has a host with the
    database role (then every receiver uses that PostgreSQL) or the receiver names an
    external server (beam_receiver_database_url). Receivers that share one database form a
    pool: each one's nginx spreads requests over all of them, so any member's address
    serves the whole pool and one member can stop without an agent noticing.
    """
    databases = sorted(h for h, r in records.items() if "database" in r["roles"])
    if len(databases) > 1:
        problems.append(
            "%s: beam_roles: more than one host has the database role (%s): a fleet has one "
            "PostgreSQL for its receivers" % (databases[1], ", ".join(databases))
        )
    for host in databases:
        records[host]["database_clients"] = []
    for host in receivers:
        explicit = by_host[host].get("beam_receiver_database_url")
        if explicit:
            records[host]["database_url"] = str(explicit)
            records[host]["database_host"] = None
        elif databases:
            # the receiver on the database host itself goes through loopback: it keeps its
            # database when the host's network is cut
            local = host == databases[0]
            address = "localhost" if local else _address(by_host[databases[0]])
            records[host]["database_url"] = "postgresql://%s@%s:%d/%s" % (
                DATABASE_USER, address, DATABASE_PORT, DATABASE_NAME)
            records[host]["database_host"] = databases[0]
            records[databases[0]]["database_clients"].append("localhost" if local else _address(by_host[host]))
        else:
            records[host]["database_url"] = None
            records[host]["database_host"] = None
    for host in receivers:
        database = _database_of(records[host])
        records[host]["receiver_pool"] = (
            [other for other in receivers if _database_of(records[other]) == database] if database else [host]
        )
        records[host]["receiver_pool_addresses"] = [_address(by_host[other]) for other in records[host]["receiver_pool"]]
    if databases and not receivers:
        problems.append(
            "%s: beam_roles: the database role serves the receivers, but the inventory has no "
            "host with the receiver role" % databases[0]
        )


def fleet_warnings(records):
    """What a valid fleet still exposes: every plain-HTTP hop, one line each (no failure)."""
    warnings = []
    for host in sorted(records):
        record = records[host]
        if str(record.get("receiver_url") or "").startswith("http://"):
            warnings.append(
                "%s: beam_receiver_tls: false: agents, operators and browsers reach this receiver in plain "
                "HTTP, so anyone on the path can read device tokens, passwords and session cookies" % host
            )
        if "agent" in record["roles"] and str(record.get("api_url") or "").startswith("http://"):
            warnings.append("%s: the agent pushes to %s in plain HTTP: its token crosses the network readable"
                            % (host, record["api_url"]))
    return warnings


def fleet_summary(records):
    """Counts and groupings an operator reads at the top of a run."""
    sites = {}
    architectures = {}
    for record in records.values():
        sites.setdefault(record["site"], []).append(record["node_id"])
        architectures.setdefault(record["arch"], []).append(record["node_id"])
    return {
        "nodes": len(records),
        "agents": sorted(r["node_id"] for r in records.values() if "agent" in r["roles"]),
        "receivers": sorted(r["node_id"] for r in records.values() if "receiver" in r["roles"]),
        "databases": sorted(r["node_id"] for r in records.values() if "database" in r["roles"]),
        "sites": dict((k, sorted(v)) for k, v in sites.items() if k is not None),
        "architectures": dict((k, sorted(v)) for k, v in architectures.items() if k is not None),
    }

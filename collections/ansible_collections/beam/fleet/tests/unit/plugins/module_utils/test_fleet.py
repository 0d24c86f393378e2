"""The fleet rules: every kind of inventory mistake is refused, with host and key named."""

from __future__ import annotations

import pytest
from ansible_collections.beam.fleet.plugins.module_utils.fleet import (
    fleet_warnings,
    check_sensor,
    fleet_summary,
    sensor_devices,
    validate_fleet,
)


def node(host, roles, **extra):
    base = {"host": host, "beam_roles": roles, "beam_site": "lab", "beam_arch": "x86_64"}
    base.update(extra)
    return base


def test_valid_fleet_resolves_each_agent_to_its_receiver():
    records, problems = validate_fleet([
        node("rx", ["receiver"], ansible_host="10.0.0.5"),
        node("pi1", ["agent"], beam_sensors=[{"name": "g", "type": "mightyohm", "port": "/dev/ttyUSB0"}]),
        node("pi2", ["agent"], beam_node_id="roof-2"),
    ])
    assert problems == []
    assert records["pi1"]["api_url"] == "https://10.0.0.5"  # nginx with TLS on 443 by default
    assert records["pi1"]["receiver_host"] == "rx"
    assert records["pi2"]["node_id"] == "roof-2"
    assert records["pi1"]["devices"] == {"serial": ["/dev/ttyUSB0"], "i2c": []}
    assert fleet_summary(records)["agents"] == ["pi1", "roof-2"]


def test_duplicate_node_ids_are_refused():
    problems = validate_fleet([
        node("rx", ["receiver"]),
        node("pi1", ["agent"], beam_node_id="same"),
        node("pi2", ["agent"], beam_node_id="same"),
    ])[1]
    assert problems == ["pi1: beam_node_id: duplicate node id 'same' (also used by pi2)"]


def test_unknown_role_and_architecture_are_refused():
    problems = validate_fleet([node("rx", ["receiver", "gateway"], beam_arch="riscv64")])[1]
    assert "rx: beam_roles: unknown role 'gateway' (known: agent, receiver, database)" in problems
    assert any(p.startswith("rx: beam_arch: must be one of x86_64, aarch64, armv7l") for p in problems)


def test_agent_without_receiver_is_refused():
    problems = validate_fleet([node("pi1", ["agent"])])[1]
    assert len(problems) == 1
    assert problems[0].startswith("pi1: beam_receiver: agent points at no receiver")


def test_agent_must_choose_among_several_receivers():
    records, problems = validate_fleet([
        node("rx1", ["receiver"]), node("rx2", ["receiver"]),
        node("pi1", ["agent"]), node("pi2", ["agent"], beam_receiver="rx2"),
    ])
    assert problems == ["pi1: beam_receiver: agent points at no receiver: set beam_receiver to one of rx1, rx2"]
    assert records["pi2"]["api_url"] == "https://rx2"


def test_beam_receiver_must_name_a_receiver_host():
    problems = validate_fleet([
        node("rx", ["receiver"]), node("pi1", ["agent"], beam_receiver="pi2"),
        node("pi2", ["agent"], beam_receiver="nowhere"),
    ])[1]
    assert "pi1: beam_receiver: host 'pi2' has no receiver role" in problems
    assert "pi2: beam_receiver: 'nowhere' is not a host of this inventory" in problems


def test_external_receiver_url_satisfies_an_agent():
    records, problems = validate_fleet([node("pi1", ["agent"], beam_receiver_url="https://rx.example.org/")])
    assert problems == []
    assert records["pi1"]["api_url"] == "https://rx.example.org"


def test_node_with_both_roles_pushes_to_itself():
    records, problems = validate_fleet([node("box", ["agent", "receiver"], beam_receiver_port=9000)])
    assert problems == []
    assert records["box"]["api_url"] == "https://box:9000"


@pytest.mark.parametrize(
    ("sensor", "expected"),
    [
        ({"name": "g", "type": "geigerr"}, ("type", "unknown sensor type 'geigerr'")),
        ({"name": "g", "type": "mightyohm"}, ("port", "is required for sensor type 'mightyohm'")),
        ({"name": "g", "type": "mightyohm", "port": 7}, ("port", "must be a string, got 7")),
        ({"name": "t", "type": "bme280", "address": 0x42}, ("address", "must be one of 118, 119, got 66")),
        ({"name": "t", "type": "bme280", "bus": -1}, ("bus", "must be at least 0")),
        ({"name": "t", "type": "bme280", "colour": "red"}, ("colour", "unknown option for sensor type 'bme280'")),
        ({"name": "v", "type": "virtual", "signal": "square"}, ("signal", "must be one of 'sine'")),
        ({"name": "v", "type": "virtual", "interval_ms": 0}, ("interval_ms", "must be a positive int")),
        ({"name": "v", "type": "virtual", "amplitude": True}, ("amplitude", "must be a number")),
        ({"type": "virtual"}, ("name", "is required")),
        ({"name": "m", "type": "mqtt", "host": "broker"}, ("topics", "is required for sensor type 'mqtt'")),
        ({"name": "m", "type": "mqtt", "host": "b", "topics": "a/#"}, ("topics", "must be a list")),
        ({"name": "m", "type": "mqtt", "host": "b", "topics": ["a"], "qos": 3}, ("qos", "must be one of 0, 1, 2")),
        ({"name": "m", "type": "mqtt", "host": "b", "topics": ["a"], "payload_format": "xml"}, ("payload_format", "must be one of 'json', 'plain'")),
        ({"name": "m", "type": "mqtt", "host": "b", "topics": ["a"], "tls": True}, ("tls", "unknown option for sensor type 'mqtt'")),
        ({"name": "p", "type": "x", "driver": "not a reference"}, ("driver", "must be 'package.module:Class'")),
    ],
)
def test_sensor_mistakes_are_named(sensor, expected):
    problems = check_sensor(sensor)
    key, fragment = expected
    assert any(k == key and fragment in message for k, message in problems), problems


def test_valid_sensors_pass():
    assert check_sensor({"name": "t", "type": "bme280", "bus": 1, "address": 119, "interval_ms": 5000}) == []
    assert check_sensor({"name": "s", "type": "system", "top_processes": 0, "mounts": ["/"]}) == []
    assert check_sensor({
        "name": "plugs", "type": "mqtt", "host": "broker.lan", "port": 8883, "topics": ["tele/+/SENSOR"],
        "username": "beam", "password_file": "/etc/beam/mqtt.password", "ca_file": "/etc/beam/mqtt-ca.crt",
    }) == []
    assert check_sensor({"name": "p", "type": "mine", "driver": "my_pkg.sensors:Mine", "anything": 1}) == []


def test_sensor_problems_reach_the_fleet_report_with_index_and_name():
    problems = validate_fleet([
        node("rx", ["receiver"]),
        node("pi1", ["agent"], beam_sensors=[
            {"name": "a", "type": "virtual"}, {"name": "a", "type": "virtual"},
            {"name": "g", "type": "geigerr"},
        ]),
    ])[1]
    assert "pi1: beam_sensors[1] (a).name: duplicate sensor name 'a'" in problems
    assert any(p.startswith("pi1: beam_sensors[2] (g).type: unknown sensor type 'geigerr'") for p in problems)


def test_sensors_on_a_node_without_agent_role_are_refused():
    problems = validate_fleet([node("rx", ["receiver"], beam_sensors=[{"name": "v", "type": "virtual"}])])[1]
    assert problems == ["rx: beam_sensors: sensors are declared but the node has no agent role"]


def test_every_problem_is_reported_at_once():
    problems = validate_fleet([
        node("bad id!", [], beam_site="", beam_tags={"a": 1}, beam_arch=None),
    ])[1]
    keys = {p.split(": ")[1] for p in problems}
    assert keys == {"beam_node_id", "beam_roles", "beam_site", "beam_arch", "beam_tags"}


def test_devices_of_i2c_sensors_use_the_default_bus():
    devices = sensor_devices([
        {"name": "t", "type": "bme280"},
        {"name": "u", "type": "bme280", "bus": 3},
        {"name": "g", "type": "serial_lines", "port": "/dev/ttyACM0", "pattern": "x"},
        {"name": "n", "type": "tcp_json", "host": "h", "port": 4000},
    ])
    assert devices == {"i2c": ["/dev/i2c-1", "/dev/i2c-3"], "serial": ["/dev/ttyACM0"]}


def test_plain_http_only_where_the_inventory_asks_and_then_a_warning():
    records, problems = validate_fleet([
        node("rx1", ["receiver"], beam_receiver_port=8443),
        node("rx2", ["receiver"], beam_receiver_tls=False),
        node("pi1", ["agent"], beam_receiver="rx1"),
        node("pi2", ["agent"], beam_receiver="rx2"),
    ])
    assert problems == []
    assert records["pi1"]["api_url"] == "https://rx1:8443"
    assert records["pi2"]["api_url"] == "http://rx2"
    assert fleet_warnings(records) == [
        "pi2: the agent pushes to http://rx2 in plain HTTP: its token crosses the network readable",
        "rx2: beam_receiver_tls: false: agents, operators and browsers reach this receiver in plain HTTP, "
        "so anyone on the path can read device tokens, passwords and session cookies",
    ]


def test_a_tls_setting_that_cannot_work_is_refused():
    problems = validate_fleet([
        node("rx1", ["receiver"], beam_receiver_url="http://rx1.example.org:8000"),
        node("rx2", ["receiver"], beam_receiver_tls="yes"),
        node("pi1", ["agent"], beam_receiver="rx1", beam_receiver_tls=True),
    ])[1]
    assert problems == [
        "pi1: beam_receiver_tls: is set but the node has no receiver role",
        "rx1: beam_receiver_url: 'http://rx1.example.org:8000' is plain HTTP but the receiver serves only "
        "HTTPS (beam_receiver_tls is true by default): use https://, or set beam_receiver_tls: false to "
        "serve plain HTTP",
        "rx2: beam_receiver_tls: must be true or false, got 'yes'",
    ]
    # an https:// URL in front of a plain receiver is the operator's own TLS proxy: allowed
    records, problems = validate_fleet([node("rx", ["receiver"], beam_receiver_tls=False, beam_receiver_url="https://rx.example.org")])
    assert problems == [] and fleet_warnings(records) == []


def test_receivers_sharing_the_database_host_form_one_pool_behind_the_first_address():
    records, problems = validate_fleet([
        node("rx1", ["receiver", "database"], ansible_host="10.0.0.5"),
        node("rx2", ["receiver"], ansible_host="10.0.0.6"),
        node("pi1", ["agent"]),
        node("pi2", ["agent"], beam_receiver="rx2"),
    ])
    assert problems == []
    # the receiver on the database host reaches it over loopback, the other over the network
    assert records["rx1"]["database_url"] == "postgresql://beam_receiver@localhost:5432/beam"
    assert records["rx2"]["database_url"] == "postgresql://beam_receiver@10.0.0.5:5432/beam"
    for rx in ("rx1", "rx2"):
        assert records[rx]["database_host"] == "rx1"
        assert records[rx]["receiver_pool"] == ["rx1", "rx2"]
        assert records[rx]["receiver_pool_addresses"] == ["10.0.0.5", "10.0.0.6"]
    assert records["rx1"]["database_clients"] == ["localhost", "10.0.0.6"]
    # one pool: an agent without beam_receiver takes the pool's first address
    assert (records["pi1"]["receiver_host"], records["pi1"]["api_url"]) == ("rx1", "https://10.0.0.5")
    assert records["pi2"]["receiver_host"] == "rx2"
    assert fleet_summary(records)["databases"] == ["rx1"]


def test_receivers_on_their_own_sqlite_files_are_no_pool():
    records, problems = validate_fleet([
        node("rx1", ["receiver"]),
        node("rx2", ["receiver"]),
        node("pi1", ["agent"]),
    ])
    assert records["rx1"]["database_url"] is None
    assert records["rx1"]["receiver_pool"] == ["rx1"]
    assert problems == ["pi1: beam_receiver: agent points at no receiver: set beam_receiver to one of rx1, rx2"]


def test_an_external_database_url_pools_the_receivers_that_name_it():
    url = "postgresql://beam@db.example.org:5432/beam?sslmode=verify-full&sslrootcert=system"
    records, problems = validate_fleet([
        node("rx1", ["receiver"], beam_receiver_database_url=url),
        node("rx2", ["receiver"], beam_receiver_database_url=url),
        node("pi1", ["agent"]),
    ])
    assert problems == []
    assert records["rx2"]["database_url"] == url
    assert records["rx2"]["database_host"] is None
    assert records["rx1"]["receiver_pool"] == ["rx1", "rx2"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://beam:hunter2@db:5432/beam",  # a password in the URL
        "/var/lib/beam-receiver/receiver.db",       # a path where a URL belongs
        "postgresql://db:5432/beam",                # no user
        "postgresql://beam@db:5432/",               # no database
    ],
)
def test_a_database_url_that_cannot_work_is_refused_without_echoing_it(url):
    problems = validate_fleet([node("rx", ["receiver"], beam_receiver_database_url=url)])[1]
    assert len(problems) == 1
    assert problems[0].startswith("rx: beam_receiver_database_url: must be postgresql://USER@HOST")
    assert "hunter2" not in problems[0]


def test_the_database_role_needs_receivers_and_is_one_per_fleet():
    problems = validate_fleet([node("db", ["database"]), node("db2", ["database"])])[1]
    assert "db: beam_roles: the database role serves the receivers, but the inventory has no host with the receiver role" in problems
    assert any(p.startswith("db2: beam_roles: more than one host has the database role (db, db2)") for p in problems)
    problems = validate_fleet([node("pi", ["agent"], beam_receiver_database_url="postgresql://u@h/d")])[1]
    assert "pi: beam_receiver_database_url: is set but the node has no receiver role" in problems

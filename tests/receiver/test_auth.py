"""Tokens file, token rotation without restart, dashboard users and sessions."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, Callable

import pytest

from beam_receiver.app import create_app
from beam_receiver.auth import (
    Credentials,
    check_user,
    hash_token,
    identify_token,
    load_credentials,
)
from beam_receiver.config import ConfigError, load_config
from beam_receiver.logins import DashboardUser, resume_login, start_login

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE, PASSWORD, USER
from tests.support.files import bump_mtime
from tests.support.receiver import write_tokens_file
from tests.support.responses import assert_error


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_identify_token_finds_devices_and_operators() -> None:
    devices = {f"node-{i:04d}": hash_token(f"token-{i}")[7:] for i in range(200)}
    credentials = Credentials(devices=devices, operators={"ops": hash_token("op")[7:]})
    caller = identify_token(credentials, "token-137")
    assert caller is not None and (caller.kind, caller.name) == ("device", "node-0137")
    operator = identify_token(credentials, "op")
    assert operator is not None and (operator.kind, operator.name) == ("operator", "ops")
    assert identify_token(credentials, "token-200") is None
    assert identify_token(credentials, "") is None


def test_a_hash_listed_as_device_and_operator_identifies_the_device() -> None:
    """The narrower right wins: the token may write its device's data, not read the fleet."""
    shared = hash_token("shared")[7:]
    credentials = Credentials(devices={"node-1": shared}, operators={"ops": shared})
    caller = identify_token(credentials, "shared")
    assert caller is not None and (caller.kind, caller.name) == ("device", "node-1")


def test_api_calls_without_a_cookie_get_no_session(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    response = receiver.post_readings(make_reading(1))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_rewritten_tokens_file_takes_effect_without_restart(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    assert receiver.post_readings(make_reading(1)).status_code == 200
    write_tokens_file(
        receiver.tokens_file,
        {DEVICE: "rotated-token", OTHER_DEVICE: "device-token-0002"},
        {"ops": "operator-token-ops"},
    )
    bump_mtime(receiver.tokens_file)
    assert_error(receiver.post_readings(make_reading(2)), 401, "unauthorized")
    receiver.tokens[DEVICE] = "rotated-token"
    assert receiver.post_readings(make_reading(2)).status_code == 200


def test_broken_tokens_file_keeps_the_last_good_tokens(
    receiver: Receiver,
    make_reading: Callable[..., dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.tokens_file.write_text('[devices]\n"beamrider-0001" = "plain-text-token"\n')
    bump_mtime(receiver.tokens_file)
    assert receiver.post_readings(make_reading(1)).status_code == 200
    assert any("keeping the previous contents" in r.getMessage() for r in caplog.records)


def test_worker_started_after_the_file_broke_uses_the_last_good_parse(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    """What a gunicorn worker forked after a bad SIGHUP deploy sees: no crash, old tokens."""
    receiver.tokens_file.write_text("[devices\n")
    app = create_app(load_config(receiver.directory / "receiver.toml"))
    response = app.test_client().post(
        "/api/readings", json=make_reading(1), headers=receiver.headers()
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[devices]\n"a" = "0123"\n', "devices.a"),
        ('[devices]\n"a" = 5\n', "devices.a"),
        ('[operators]\nops = "sha256:xyz"\n', "operators.ops"),
        ('[users]\nadmin = "plain password"\n', "users.admin"),
        ('[admins]\nx = "y"\n', "admins"),
        ('devices = "all"\n', "devices"),
        ("[devices\n", "(file)"),
    ],
)
def test_bad_tokens_file_names_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert any(line.startswith(f"{path}: {key}: ") for line in caught.value.lines())


def test_token_hashes_are_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'[devices]\n"a" = "{hash_token("t").upper().replace("SHA256", "sha256")}"\n')
    credentials = load_credentials(path)
    caller = identify_token(credentials, "t")
    assert caller is not None and caller.name == "a"


def test_check_user(receiver: Receiver) -> None:
    with receiver.app.app_context():
        assert check_user(USER, PASSWORD)
        assert not check_user(USER, PASSWORD + "!")
        assert not check_user("nobody", PASSWORD)
        assert not check_user("", "")
        user = start_login(USER)
        assert isinstance(user, DashboardUser) and user.name == USER
        assert user.get_id() != USER and len(user.get_id()) >= 40  # the login's random id
        resumed = resume_login(user.get_id())
        assert resumed is not None and resumed.name == USER
        assert start_login("nobody") is None
        assert resume_login(USER) is None  # a user name is not a login id


def test_malformed_password_hash_refuses_login(tmp_path: Path, receiver: Receiver) -> None:
    receiver.tokens_file.write_text('[users]\nadmin = "nonsense$salt$hash"\n')
    bump_mtime(receiver.tokens_file)
    with receiver.app.app_context():
        assert not check_user("admin", "nonsense")


def test_login_view_is_the_dashboards(receiver: Receiver) -> None:
    assert receiver.app.login_manager.login_view == "dashboard.login"  # type: ignore[attr-defined]


def test_dashboard_session_may_read_the_api(receiver: Receiver) -> None:
    assert_error(receiver.client.get("/api/readings/latest"), 401, "unauthorized")
    receiver.login()
    assert receiver.client.get("/api/readings/latest").status_code == 200
    assert receiver.client.get("/api/nodes").status_code == 200
    url = "/api/analytics/series?device_id=beamrider-0001&sensor=geiger&field=cpm"
    assert receiver.client.get(url).status_code == 200


def test_dashboard_session_may_not_write(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    receiver.login()
    response = receiver.client.post("/api/readings", json=make_reading(1))
    assert_error(response, 401, "unauthorized")


def test_removed_user_loses_the_session(receiver: Receiver) -> None:
    receiver.login()
    write_tokens_file(receiver.tokens_file, {DEVICE: "device-token-0001"}, {}, {})
    bump_mtime(receiver.tokens_file)
    assert_error(receiver.client.get("/api/nodes"), 401, "unauthorized")


def test_unknown_bearer_token_is_refused_even_with_a_session(receiver: Receiver) -> None:
    receiver.login()
    response = receiver.client.get("/api/nodes", headers={"Authorization": "Bearer wrong"})
    assert_error(response, 401, "unauthorized")


def test_session_key_file_is_private_and_shared(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    key_file = receiver.directory / "receiver.db.secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = create_app(load_config(receiver.directory / "receiver.toml"))
    assert second.config["SECRET_KEY"] == receiver.app.config["SECRET_KEY"]
    # A session made by one worker is good in another.
    receiver.login()
    cookie = receiver.client.get_cookie("beam_receiver_session")
    assert cookie is not None
    other = second.test_client()
    other.set_cookie("beam_receiver_session", cookie.value)
    assert other.get("/api/nodes").status_code == 200


def test_short_session_key_is_refused(receiver: Receiver) -> None:
    from beam_receiver.secret_key import SecretKeyError

    (receiver.directory / "receiver.db.secret-key").write_text("short\n")
    with pytest.raises(SecretKeyError, match="shorter than"):
        create_app(load_config(receiver.directory / "receiver.toml"))

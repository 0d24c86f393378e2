"""Failed dashboard logins are limited per user name and per client address: 429 with
Retry-After, shared by every worker, decided before any password is hashed.

Real apps from create_app on real files; attempts go through the login form, from the
client addresses given in the WSGI environ (what a socket, or ProxyFix, sets).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import pytest
from werkzeug.test import TestResponse

import beam_receiver.auth
from beam_receiver.app import create_app
from beam_receiver.config import load_config
from beam_receiver.login_throttle import address_key

from tests.support.app import Receiver
from tests.support.constants import PASSWORD, USER
from tests.support.dashboard import form_login

WRONG = "not the password"


def attempt(
    receiver: Receiver, address: str, username: str = USER, password: str = WRONG
) -> TestResponse:
    """One login through the form, from a fresh browser at this address."""
    client = receiver.app.test_client()
    return form_login(client, username, password, environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password hash the receiver checks from now on (the real check still runs)."""
    checked: list[str] = []
    real = beam_receiver.auth.check_password_hash

    def counting(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(beam_receiver.auth, "check_password_hash", counting)
    return checked


def assert_throttled(response: TestResponse, window_s: float) -> int:
    assert response.status_code == 429, response.status_code
    assert "Too many failed logins" in response.get_data(as_text=True)
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= math.ceil(window_s)  # whole seconds, rounded up
    return wait


def test_a_user_name_is_limited_from_any_address_and_the_limit_hashes_nothing(
    make_receiver: Callable[..., Receiver], hashes: list[str]
) -> None:
    receiver = make_receiver(login_max_failures_per_user=3, login_failure_window_s=600)
    for number in range(3):
        assert attempt(receiver, f"192.0.2.{number}").status_code == 401
    assert len(hashes) == 3
    # Even the right password, from a new address, is not checked now.
    assert_throttled(attempt(receiver, "198.51.100.7", password=PASSWORD), 600)
    assert len(hashes) == 3
    # Other users are not affected.
    assert attempt(receiver, "198.51.100.7", username="someone-else").status_code == 401


def test_an_address_is_limited_whatever_user_names_it_tries(
    make_receiver: Callable[..., Receiver], hashes: list[str]
) -> None:
    receiver = make_receiver(login_max_failures_per_address=4, login_failure_window_s=600)
    for number in range(4):
        assert attempt(receiver, "203.0.113.9", username=f"guess-{number}").status_code == 401
    assert_throttled(attempt(receiver, "203.0.113.9", password=PASSWORD), 600)
    assert len(hashes) == 4
    assert attempt(receiver, "203.0.113.10", password=PASSWORD).status_code == 302


def test_ipv6_addresses_are_counted_per_64(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(login_max_failures_per_address=2)
    assert attempt(receiver, "2001:db8:1:2::1", username="a").status_code == 401
    assert attempt(receiver, "2001:db8:1:2:ffff::9", username="b").status_code == 401
    assert attempt(receiver, "2001:db8:1:2::77", username="c").status_code == 429
    assert attempt(receiver, "2001:db8:1:3::1", username="d").status_code == 401


@pytest.mark.parametrize(
    ("remote_addr", "key"),
    [
        ("192.0.2.1", "address:192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "address:2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "address:192.0.2.1"),
        ("", "address:"),
        (None, "address:"),
        ("not an address", "address:not an address"),
    ],
)
def test_address_keys(remote_addr: Any, key: str) -> None:
    assert address_key(remote_addr) == key


def test_a_good_password_clears_the_user_name_and_gives_the_address_its_count_back(
    make_receiver: Callable[..., Receiver],
) -> None:
    receiver = make_receiver(login_max_failures_per_user=3, login_max_failures_per_address=3)
    for _ in range(2):
        assert attempt(receiver, "192.0.2.1").status_code == 401
    assert attempt(receiver, "192.0.2.1", password=PASSWORD).status_code == 302
    # The address has 2 failures, not 3, and the user name starts again at 0: one more
    # failure is allowed from here, then the address is at its limit.
    assert attempt(receiver, "192.0.2.1").status_code == 401
    assert attempt(receiver, "192.0.2.1").status_code == 429
    assert attempt(receiver, "192.0.2.2").status_code == 401


def test_the_limit_ends_with_its_window(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(login_max_failures_per_user=2, login_failure_window_s=1.5)
    assert attempt(receiver, "192.0.2.1").status_code == 401
    assert attempt(receiver, "192.0.2.2").status_code == 401
    wait = assert_throttled(attempt(receiver, "192.0.2.3"), 1.5)
    time.sleep(wait + 0.1)
    assert attempt(receiver, "192.0.2.4", password=PASSWORD).status_code == 302


def test_workers_share_the_counts(receiver: Receiver) -> None:
    """Two apps on the same files are two gunicorn workers; the default limit is 5."""
    other_worker = create_app(load_config(receiver.directory / "receiver.toml"))
    try:
        for number in range(5):
            app = (receiver.app, other_worker)[number % 2]
            client = app.test_client()
            response = form_login(client, USER, WRONG, environ_base={"REMOTE_ADDR": "192.0.2.1"})
            assert response.status_code == 401
        client = other_worker.test_client()
        response = form_login(client, USER, PASSWORD, environ_base={"REMOTE_ADDR": "192.0.2.2"})
        assert_throttled(response, 900)
    finally:
        other_worker.extensions["beam_receiver"].database.close()


def test_concurrent_attempts_cannot_overshoot_the_limit(
    make_receiver: Callable[..., Receiver], hashes: list[str]
) -> None:
    """Attempts are counted before the password is hashed, in one write transaction."""
    receiver = make_receiver(login_max_failures_per_user=4)
    statuses: list[int] = []
    start = threading.Barrier(12)

    def guess(number: int) -> None:
        client = receiver.app.test_client()
        environ = {"REMOTE_ADDR": f"192.0.2.{number}"}
        client.get("/login", environ_base=environ)
        start.wait()
        statuses.append(form_login(client, USER, WRONG, environ_base=environ).status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 4 + [429] * 8
    assert len(hashes) == 4


def test_a_refused_login_page_names_the_wait(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(login_max_failures_per_user=1, login_failure_window_s=600)
    assert attempt(receiver, "192.0.2.1").status_code == 401
    response = attempt(receiver, "192.0.2.1")
    assert_throttled(response, 600)
    assert "Try again in 10 min." in response.get_data(as_text=True)
    assert response.mimetype == "text/html"

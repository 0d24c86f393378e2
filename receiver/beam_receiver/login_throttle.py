"""Dashboard login attempts, limited per user name and per client address.

Checking a password costs about 160 ms of CPU on purpose (scrypt): that is what makes each
guess slow. Without a limit, a client could still make guesses all day, and keep workers
busy hashing. So each attempt is counted, before its password is hashed, against its user
name and its client address, in SQLite so that every worker shares the counts. Past
`login_max_failures_per_user` or `login_max_failures_per_address` attempts in a window of
`login_failure_window_s` (starting at the first), attempts are refused with 429 and
Retry-After until the window ends, without hashing anything. A good password starts its
user name afresh and does not count against its address.

The address is the client's as Flask sees it (behind a reverse proxy, set `proxy_fix`),
with IPv6 addresses counted per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Optional

from flask import request

from beam_receiver.state import get_state
from beam_receiver.storage import LoginLimit
from beam_receiver.timestamps import now_ms

MAX_KEY_CHARS = 256


def address_key(remote_addr: Optional[str]) -> str:
    """The key an address is counted under: IPv4 as it is, IPv6 by its /64."""
    text = (remote_addr or "").strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "address:" + text[:MAX_KEY_CHARS]  # "" for a unix socket: one shared count
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"address:{address}"


def user_key(username: str) -> str:
    return "user:" + username[:MAX_KEY_CHARS]


def _limits(username: str) -> list[LoginLimit]:
    config = get_state().config
    return [
        LoginLimit(user_key(username), config.login_max_failures_per_user),
        LoginLimit(address_key(request.remote_addr), config.login_max_failures_per_address),
    ]


def _window_ms() -> int:
    return int(get_state().config.login_failure_window_s * 1000)


def begin_attempt(username: str) -> int:
    """Count a login attempt, or say how many seconds to wait first (0: go ahead).

    A refused attempt only reads: a flood of them takes no write lock from the agents.
    """
    database = get_state().database
    limits = _limits(username)
    now = now_ms()
    wait_ms = database.login_wait_ms(limits, _window_ms(), now)
    if not wait_ms:
        wait_ms = database.count_login_attempt(limits, _window_ms(), now)
    return math.ceil(wait_ms / 1000)


def attempt_succeeded(username: str) -> None:
    """The password was right: the user name starts afresh, the address gets its count back."""
    user, address = _limits(username)
    get_state().database.forgive_login_attempt(user.key, address.key)

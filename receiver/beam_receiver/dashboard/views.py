"""The dashboard's pages: login, logout, the fleet table and one page per node."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, TypeVar, cast
from urllib.parse import urlsplit

import flask_login
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from .. import fleet, login_throttle
from ..auth import check_user
from ..logins import end_login, start_login
from . import formatting
from .forms import LoginForm, LogoutForm

View = TypeVar("View", bound=Callable[..., Any])


def login_required(view: View) -> View:
    """flask_login.login_required with its type kept (flask_login ships no type hints)."""
    return cast(View, flask_login.login_required(view))


bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)

# Chart time ranges: name -> (seconds shown, bucket width, bucket width in words). The
# buckets keep every chart between 60 and 170 points: enough to see shape, light on a phone.
CHART_RANGES = {
    "1h": (3600, "1m", "1 min"),
    "6h": (6 * 3600, "5m", "5 min"),
    "24h": (24 * 3600, "15m", "15 min"),
    "7d": (7 * 24 * 3600, "1h", "1 h"),
}
DEFAULT_RANGE = "24h"

# Only this site's own files: no inline script or style, no other origin, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@bp.after_request
def add_page_headers(response: Response) -> Response:
    """Make any injected markup inert; Referer only to this site (the login form's CSRF
    check over HTTPS needs it). nosniff and no framing come with every answer
    (security_headers.py)."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        # Pages show live fleet data and a logged-in user's name: never from a cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.context_processor
def template_helpers() -> dict[str, object]:
    """The formatting functions the templates call."""
    return {
        "status_label": formatting.status_label,
        "status_class": formatting.status_class,
        "status_hint": formatting.status_hint,
        "describe_age": formatting.describe_age,
        "iso_utc": formatting.iso_utc,
    }


def safe_next_url(target: str | None) -> str:
    """Only a path on this site: an absolute or scheme-relative URL would be an open redirect."""
    fallback = url_for("dashboard.fleet")
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target or any(ord(char) < 32 for char in target):
        return fallback
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on a valid post, start a session and go where the user was going."""
    form = LoginForm()
    if request.method == "GET":
        if flask_login.current_user.is_authenticated:
            return redirect(safe_next_url(request.args.get("next")))
        return render_template("dashboard_login.html", form=form)
    if not form.validate_on_submit():
        # A missing or stale CSRF token lands here too: the page says so and asks again.
        return render_template("dashboard_login.html", form=form), 400
    username = form.username.data or ""
    wait_s = login_throttle.begin_attempt(username)
    if wait_s:  # refused before the password is hashed
        minutes = max(1, round(wait_s / 60))
        flash(f"Too many failed logins. Try again in {minutes} min.", "error")
        page = render_template("dashboard_login.html", form=form)
        return page, 429, {"Retry-After": str(wait_s)}
    user = start_login(username) if check_user(username, form.password.data or "") else None
    if user is None:
        flash("Unknown user or wrong password.", "error")
        return render_template("dashboard_login.html", form=form), 401
    login_throttle.attempt_succeeded(username)
    flask_login.login_user(user)
    return redirect(safe_next_url(request.args.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    """End the login for good (its cookie stops working in every worker); a POST with a
    CSRF token so another site cannot log you out."""
    form = LogoutForm()
    if not form.validate_on_submit():
        abort(400, description="The logout form's security token is missing or expired.")
    user = flask_login.current_user
    if user.is_authenticated:
        end_login(user)
    flask_login.logout_user()
    flash("Logged out.", "info")
    return redirect(url_for("dashboard.login"))


# The fleet page's filters: query parameter -> how a node's value for it is read. The same
# names are data attributes on each row (data-site, data-role, data-status) for fleet.js.
FLEET_FILTERS = ("site", "role", "status")
# How often fleet.js asks GET /api/nodes for fresh values (seconds); ?refresh=N picks
# another period within the bounds.
FLEET_REFRESH_S = 10
FLEET_REFRESH_BOUNDS_S = (2, 600)


def refresh_period_s() -> int:
    """?refresh=N (seconds) within FLEET_REFRESH_BOUNDS_S, else FLEET_REFRESH_S."""
    text = request.args.get("refresh", "")
    if not (text.isascii() and text.isdigit()):
        return FLEET_REFRESH_S
    low, high = FLEET_REFRESH_BOUNDS_S
    return min(high, max(low, int(text)))


def filter_value(node: dict[str, Any], name: str) -> str:
    """A node's site (its `site` tag), role or status, as the filters compare it."""
    value = (node.get("tags") or {}).get("site") if name == "site" else node.get(name)
    return "" if value is None else str(value)


def fleet_filters() -> dict[str, str]:
    """The filters asked for in the query string; unknown names are ignored."""
    return {name: request.args.get(name, "") for name in FLEET_FILTERS}


def node_matches(node: dict[str, Any], filters: dict[str, str], skip: str = "") -> bool:
    return all(
        not wanted or filter_value(node, name) == wanted
        for name, wanted in filters.items()
        if name != skip
    )


@bp.route("/", endpoint="fleet")
@login_required
def fleet_page() -> ResponseReturnValue:
    """Every expected and unexpected node with its status, rendered on the server.

    Every row is rendered; rows the filters leave out are `hidden`, so fleet.js can filter
    again without asking the server, and the page still filters without JavaScript."""
    nodes = fleet.list_nodes()  # sorted by node_id
    counts = Counter(str(node["status"]) for node in nodes)
    filters = fleet_filters()
    choices = {
        name: sorted({filter_value(node, name) for node in nodes} - {""}) for name in FLEET_FILTERS
    }
    # Per choice, how many nodes it would show with the other filters kept.
    choice_counts = {
        name: Counter(
            filter_value(node, name) for node in nodes if node_matches(node, filters, skip=name)
        )
        for name in FLEET_FILTERS
    }
    shown = {str(node["node_id"]) for node in nodes if node_matches(node, filters)}
    return render_template(
        "dashboard_fleet.html",
        nodes=nodes,
        counts=counts,
        last_rollout=fleet.last_rollout(nodes),
        filters=filters,
        choices=choices,
        choice_counts=choice_counts,
        shown=shown,
        filter_value=filter_value,
        statuses=list(formatting.STATUS_LABELS),
        refresh_s=refresh_period_s(),
        server_now=time.time(),
        logout_form=LogoutForm(),
    )


@bp.route("/nodes/<path:node_id>", endpoint="node")
@login_required
def node_page(node_id: str) -> ResponseReturnValue:
    """One node's details and the frame its charts are drawn into by dashboard.js."""
    node = fleet.get_node(node_id)
    if node is None:
        abort(404, description=f"No node named {node_id!r} has reported or is expected.")
    chosen = request.args.get("range", DEFAULT_RANGE)
    if chosen not in CHART_RANGES:
        chosen = DEFAULT_RANGE
    return render_template(
        "dashboard_node.html",
        node=node,
        ranges=CHART_RANGES,
        chosen_range=chosen,
        server_now=time.time(),
        logout_form=LogoutForm(),
    )

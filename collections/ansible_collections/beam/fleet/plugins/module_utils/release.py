# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Versioned releases on a node: ROOT/releases/<version>/, ROOT/current, ROOT/release.json.

Why functions of their own: switching, rolling back and pruning must decide the same way
whatever calls them, and each rule (which release is previous, which may be removed,
what a corrupt record means) needs tests over real directories and links. Planning reads
only; the few functions that change the disk are named for what they change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import time

FORMAT = 1
HISTORY_LIMIT = 50
RELEASES_DIR = "releases"
CURRENT_NAME = "current"
RECORD_NAME = "release.json"
LOCK_NAME = ".release.lock"
# Seconds to wait for another run holding ROOT/.release.lock before failing.
LOCK_TIMEOUT = 300.0
NONE_TEXT = "(none)"

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_EPOCH = datetime.datetime(1970, 1, 1)


class ReleaseError(Exception):
    """A request that cannot be carried out; the message is shown to the operator as is."""


def utc_timestamp(now=None):
    """Now (or now) as ISO 8601 UTC with microseconds, so activations in one second still order."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return now.strftime(_TIME_FORMAT)


def timestamp_seconds(text):
    """Seconds since the epoch for a timestamp this module wrote, None for anything else."""
    if not isinstance(text, str):
        return None
    for pattern in (_TIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return (datetime.datetime.strptime(text, pattern) - _EPOCH).total_seconds()
        except ValueError:
            continue
    return None


def version_error(version):
    """Why version cannot name a directory directly under ROOT/releases, or None when it can."""
    if not version:
        return "must not be empty"
    if "/" in version or "\0" in version:
        return "must be a single directory name (no '/')"
    if version.startswith("."):
        return "must not start with '.'"
    return None


def marker_error(marker):
    """Why complete_marker cannot be a path inside a release directory, or None when it can."""
    if not marker or os.path.isabs(marker):
        return "must be a relative path inside the release directory"
    if ".." in marker.split("/"):
        return "must not contain '..'"
    return None


def release_path(root, version):
    return os.path.join(root, RELEASES_DIR, version)


def is_complete(root, version, marker):
    """True when the release directory holds its marker (the install finished)."""
    return os.path.exists(os.path.join(release_path(root, version), marker))


def require_complete(root, version, marker):
    """Raise ReleaseError naming the missing path unless version can be made current."""
    path = release_path(root, version)
    if not os.path.isdir(path):
        raise ReleaseError("release %s is not installed: %s is not a directory" % (version, path))
    if not is_complete(root, version, marker):
        raise ReleaseError(
            "release %s is incomplete: %s does not exist"
            % (version, os.path.join(path, marker))
        )


def read_current(root):
    """What ROOT/current is: kind (missing, link, other), its link target and the version it names.

    version is None unless the link leads to a directory entry directly under ROOT/releases;
    absolute targets (older installs made the link with ansible.builtin.file) count too.
    """
    path = os.path.join(root, CURRENT_NAME)
    if not os.path.lexists(path):
        return {"kind": "missing", "target": None, "version": None}
    if not os.path.islink(path):
        return {"kind": "other", "target": None, "version": None}
    target = os.readlink(path)
    full = os.path.normpath(target if os.path.isabs(target) else os.path.join(root, target))
    name = os.path.basename(full)
    parent = os.path.dirname(full)
    releases = os.path.join(root, RELEASES_DIR)
    version = None
    if not version_error(name) and os.path.realpath(parent) == os.path.realpath(releases):
        version = name
    return {"kind": "link", "target": target, "version": version}


def _clean_entry(entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
        return None
    clean = {
        "version": entry["version"],
        "action": entry.get("action") if entry.get("action") in ("activate", "rollback") else "activate",
        "at": entry.get("at") if isinstance(entry.get("at"), str) else None,
        "by": entry.get("by") if isinstance(entry.get("by"), str) else None,
    }
    if isinstance(entry.get("from"), str):
        clean["from"] = entry["from"]
    else:
        clean["from"] = None
    return clean


def parse_record(text):
    """The record in text, with every field checked; raises ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError("format %r is not %d" % (data.get("format"), FORMAT))
    record = {"format": FORMAT}
    for key in ("active", "previous", "changed_at", "changed_by", "rolled_back_from", "rollout"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError("%s is not a string" % key)
        record[key] = value
    history = data.get("history")
    if history is None:
        history = []
    if not isinstance(history, list):
        raise ValueError("history is not a list")
    record["history"] = [entry for entry in (_clean_entry(e) for e in history) if entry is not None]
    return record


def read_record(root):
    """(record, warning): the record, or None when there is none or it cannot be used.

    Why a warning and not a failure: a corrupt record must not block the rollback it is
    there for. The link stays the truth about what is active; only the history is lost.
    """
    path = os.path.join(root, RECORD_NAME)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        return None, "%s could not be read (%s): treated as missing, its history is lost" % (path, exc)
    try:
        return parse_record(raw.decode("utf-8")), None
    except ValueError as exc:
        return None, "%s is not a valid release record (%s): treated as missing, its history is lost" % (path, exc)


def dump_record(record):
    """The record as written to disk: stable key order, one trailing newline."""
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def list_releases(root):
    """{version: mtime} for the directories directly under ROOT/releases (hidden names skipped)."""
    releases = os.path.join(root, RELEASES_DIR)
    found = {}
    try:
        names = os.listdir(releases)
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return found
        raise
    for name in names:
        path = os.path.join(releases, name)
        if version_error(name) or not os.path.isdir(path):
            continue
        found[name] = os.lstat(path).st_mtime
    return found


def linked_releases(root):
    """Versions under ROOT/releases that are links: listed, never removed."""
    releases = os.path.join(root, RELEASES_DIR)
    return set(name for name in list_releases(root) if os.path.islink(os.path.join(releases, name)))


def inspect(root):
    """Everything the module decides from, read once: the link, the record, the releases."""
    exists = os.path.isdir(root)
    current = read_current(root) if exists else {"kind": "missing", "target": None, "version": None}
    record, warning = read_record(root) if exists else (None, None)
    return {
        "root": root,
        "exists": exists,
        "current": current,
        "record": record,
        "warning": warning,
        "releases": list_releases(root) if exists else {},
        "linked": linked_releases(root) if exists else set(),
    }


def recency(history, mtimes):
    """{version: sort key}, larger is more recent: the last activation, else the directory's mtime.

    Why one scale for both: a release installed but not activated yet (staged for the next
    deploy) is as recent as its directory, while leftovers of an install without a record
    are as old as theirs.
    """
    keys = {}
    for name, mtime in mtimes.items():
        keys[name] = (mtime, -1)
    for index, entry in enumerate(history):
        if entry["version"] in mtimes:
            seconds = timestamp_seconds(entry.get("at"))
            if seconds is not None:
                keys[entry["version"]] = (seconds, index)
    return keys


def order_releases(history, mtimes):
    """Versions on disk, most recently active first."""
    keys = recency(history, mtimes)
    return sorted(mtimes, key=lambda name: (keys[name], name), reverse=True)


def rolled_back_versions(history):
    """Versions rolled back from and not activated (or rolled back to) since.

    Why: the next rollback must never land on a release that was just backed out of.
    """
    rolled = set()
    for entry in history:
        rolled.discard(entry["version"])
        if entry["action"] == "rollback" and entry.get("from"):
            rolled.add(entry["from"])
    return rolled


def latest_other(history, exclude, complete):
    """The most recently active version not in exclude, not rolled back from, and complete."""
    rolled = rolled_back_versions(history)
    for entry in reversed(history):
        version = entry["version"]
        if version in exclude or version in rolled:
            continue
        if complete(version):
            return version
    return None


def describe(snapshot):
    """The state as the module returns it: the link decides what is active."""
    record = snapshot["record"] or {}
    active = snapshot["current"]["version"]
    previous = record.get("previous")
    if previous == active:
        previous = None
    history = record.get("history") or []
    return {
        "active": active,
        "previous": previous,
        "changed_at": record.get("changed_at"),
        "changed_by": record.get("changed_by"),
        "rolled_back_from": record.get("rolled_back_from"),
        "rollout": record.get("rollout"),
        "history": history,
        "releases": order_releases(history, snapshot["releases"]),
    }


def _entry(version, action, at, actor, before):
    return {"version": version, "action": action, "at": at, "by": actor, "from": before}


def _refuse_foreign_current(snapshot):
    if snapshot["current"]["kind"] == "other":
        raise ReleaseError(
            "%s exists and is not a symlink: move it aside before switching releases"
            % os.path.join(snapshot["root"], CURRENT_NAME)
        )


def plan_activate(snapshot, version, marker, actor, at, rollout=None):
    """(record to write or None, whether current moves) to make version the active release.

    previous is what current pointed at before (the link is the truth; with no link, the
    record's active). Raises ReleaseError when the release cannot be made current.
    """
    root = snapshot["root"]
    if not snapshot["exists"]:
        raise ReleaseError(
            "%s does not exist: there is no release to switch to (install %s first)"
            % (root, release_path(root, version))
        )
    _refuse_foreign_current(snapshot)
    require_complete(root, version, marker)
    before = snapshot["current"]["version"]
    record = snapshot["record"]
    if before == version and record is not None and record["active"] == version:
        return None, False
    old = record or {"active": None, "previous": None, "history": []}
    if before is not None and before != version:
        previous = before
    elif old["active"] not in (None, version):
        previous = old["active"]
    elif old["previous"] != version:
        previous = old["previous"]
    else:
        previous = None
    history = (old["history"] + [_entry(version, "activate", at, actor, before)])[-HISTORY_LIMIT:]
    new = {
        "format": FORMAT,
        "active": version,
        "previous": previous,
        "changed_at": at,
        "changed_by": actor,
        "rolled_back_from": None,
        "rollout": rollout,
        "history": history,
    }
    return new, before != version


def plan_rollback(snapshot, from_version, marker, actor, at, rollout=None):
    """(record to write or None, whether current moves) to go back to the recorded previous.

    None when from_version is given and is not the active release (already rolled back).
    Raises ReleaseError when there is nothing usable to go back to.
    """
    root = snapshot["root"]
    before = snapshot["current"]["version"]
    if from_version is not None and before != from_version:
        return None, False
    if not snapshot["exists"]:
        raise ReleaseError("%s does not exist: there is no release to roll back to" % root)
    _refuse_foreign_current(snapshot)
    record = snapshot["record"]
    path = os.path.join(root, RECORD_NAME)
    if record is None:
        raise ReleaseError("nothing to roll back to: %s is missing or unreadable, so no previous release is recorded" % path)
    target = record["previous"]
    if target is None:
        raise ReleaseError("nothing to roll back to: %s records no previous release" % path)
    if target == before:
        raise ReleaseError("nothing to roll back to: the recorded previous release %s is already current" % target)
    try:
        require_complete(root, target, marker)
    except ReleaseError as exc:
        raise ReleaseError("cannot roll back: %s" % exc)
    history = (record["history"] + [_entry(target, "rollback", at, actor, before)])[-HISTORY_LIMIT:]
    previous = latest_other(
        history, set([target, before]), lambda version: is_complete(root, version, marker)
    )
    new = {
        "format": FORMAT,
        "active": target,
        "previous": previous,
        "changed_at": at,
        "changed_by": actor,
        "rolled_back_from": before,
        "rollout": rollout,
        "history": history,
    }
    return new, True


def plan_prune(history, mtimes, keep, protected):
    """Versions to remove so that keep releases remain, least recently active first.

    protected (the active, the previous, links) always stay, whatever keep says; keep 0 keeps all.
    """
    if not keep:
        return []
    ordered = order_releases(history, mtimes)
    kept = [name for name in ordered if name in protected]
    others = [name for name in ordered if name not in protected]
    room = max(0, keep - len(kept))
    return list(reversed(others[room:]))


def diff_text(active, previous, releases):
    """The short text shown by --diff."""
    return "active: %s\nprevious: %s\nreleases: %s\n" % (
        active or NONE_TEXT,
        previous or NONE_TEXT,
        ", ".join(releases) or NONE_TEXT,
    )


def fsync_directory(path):
    """Flush a directory's entries (a renamed link or file) to disk; SD cards lose power."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IOError, OSError):
        return
    try:
        os.fsync(fd)
    except (IOError, OSError):
        pass
    finally:
        os.close(fd)


def switch_current(root, version):
    """Point ROOT/current at releases/<version> atomically.

    Why a rename: a new link made beside it and renamed over it replaces current in one
    step, so a service starting meanwhile never finds current missing or half-made.
    """
    current = os.path.join(root, CURRENT_NAME)
    temporary = os.path.join(root, ".%s.%d.%s" % (CURRENT_NAME, os.getpid(), os.urandom(4).hex()))
    os.symlink(os.path.join(RELEASES_DIR, version), temporary)
    try:
        os.rename(temporary, current)
    except (IOError, OSError):
        try:
            os.unlink(temporary)
        except (IOError, OSError):
            pass
        raise
    fsync_directory(root)


def remove_release(root, version):
    """Delete releases/<version>, only when it is a real directory directly under ROOT/releases."""
    path = release_path(root, version)
    if version_error(version) or os.path.islink(path) or not os.path.isdir(path):
        return False
    shutil.rmtree(path)
    return True


@contextlib.contextmanager
def locked(root, timeout=None, poll=0.1):
    """Hold an exclusive fcntl lock on ROOT/.release.lock, so two plays never switch at once."""
    path = os.path.join(root, LOCK_NAME)
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    raise ReleaseError(
                        "another run still holds %s after %.0f s: is a second play switching releases here?"
                        % (path, timeout)
                    )
                time.sleep(poll)
        yield path
    finally:
        os.close(fd)

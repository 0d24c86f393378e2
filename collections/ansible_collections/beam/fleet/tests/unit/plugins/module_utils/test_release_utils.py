"""The release rules over real directories and links: reading, planning, pruning order, locking."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from ansible_collections.beam.fleet.plugins.module_utils import release

AT = "2026-02-15T19:06:00.000000Z"


def install(root: Path, version: str, complete: bool = True, mtime: float | None = None) -> Path:
    path = root / "releases" / version
    (path / "venv" / "bin").mkdir(parents=True, exist_ok=True)
    if complete:
        (path / "venv" / "bin" / "python").write_text("")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def entry(version, action="activate", at=AT, by="t", before=None):
    return {"version": version, "action": action, "at": at, "by": by, "from": before}


def write_record(root: Path, **fields):
    data = {"format": 1, "active": None, "previous": None, "changed_at": AT, "changed_by": "t",
            "rolled_back_from": None, "history": []}
    data.update(fields)
    (root / "release.json").write_text(json.dumps(data))


def test_timestamps_round_trip_and_order_within_a_second():
    import datetime

    moment = datetime.datetime(2026, 2, 15, 19, 6, 0, 123456, tzinfo=datetime.timezone.utc)
    text = release.utc_timestamp(moment)
    assert text == "2026-02-15T19:06:00.123456Z"
    assert release.timestamp_seconds(text) == pytest.approx(moment.timestamp())
    assert release.timestamp_seconds("2026-02-15T19:06:00Z") == pytest.approx(moment.timestamp() - 0.123456)
    assert release.timestamp_seconds("yesterday") is None
    assert release.timestamp_seconds(None) is None


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", ".staging", "x\0y"])
def test_version_names_must_be_one_visible_directory(name):
    assert release.version_error(name)


@pytest.mark.parametrize("name", ["1.0.0", "1.2.0+build.7", "2026-02-15_abc"])
def test_ordinary_version_names_are_accepted(name):
    assert release.version_error(name) is None


def test_marker_must_stay_inside_the_release():
    assert release.marker_error("venv/bin/python") is None
    assert release.marker_error("/usr/bin/python3")
    assert release.marker_error("../other/venv/bin/python")
    assert release.marker_error("")


def test_read_current_relative_absolute_foreign_and_missing(tmp_path):
    install(tmp_path, "1.0.0")
    assert release.read_current(tmp_path) == {"kind": "missing", "target": None, "version": None}
    os.symlink("releases/1.0.0", tmp_path / "current")
    assert release.read_current(str(tmp_path))["version"] == "1.0.0"
    os.remove(tmp_path / "current")
    os.symlink(str(tmp_path / "releases" / "1.0.0"), tmp_path / "current")
    assert release.read_current(str(tmp_path))["version"] == "1.0.0"
    os.remove(tmp_path / "current")
    os.symlink("/usr", tmp_path / "current")
    assert release.read_current(str(tmp_path)) == {"kind": "link", "target": "/usr", "version": None}
    os.remove(tmp_path / "current")
    (tmp_path / "current").mkdir()
    assert release.read_current(str(tmp_path))["kind"] == "other"


def test_read_current_through_a_linked_root(tmp_path):
    """/opt/beam may itself be a link; an absolute target through the real path still counts."""
    real = tmp_path / "data"
    install(real, "1.0.0")
    os.symlink(str(real), tmp_path / "beam")
    os.symlink(str(real / "releases" / "1.0.0"), real / "current")
    assert release.read_current(str(tmp_path / "beam"))["version"] == "1.0.0"


def test_read_record_missing_valid_and_corrupt(tmp_path):
    assert release.read_record(str(tmp_path)) == (None, None)
    write_record(tmp_path, active="1.0.0", history=[entry("1.0.0"), "junk", {"no": "version"}])
    record, warning = release.read_record(str(tmp_path))
    assert warning is None
    assert record["active"] == "1.0.0"
    assert record["history"] == [entry("1.0.0")]
    for text in ("{", "[]", '{"format": 2}', '{"format": 1, "active": 5}', '{"format": 1, "history": {}}', "\xff"):
        (tmp_path / "release.json").write_bytes(text.encode("latin-1"))
        record, warning = release.read_record(str(tmp_path))
        assert record is None, text
        assert warning.startswith(str(tmp_path / "release.json")), text
        assert "history is lost" in warning


def test_unreadable_record_is_a_warning_too(tmp_path):
    (tmp_path / "release.json").mkdir()
    record, warning = release.read_record(str(tmp_path))
    assert record is None
    assert "could not be read" in warning


def test_list_releases_skips_files_and_hidden_directories(tmp_path):
    install(tmp_path, "1.0.0", mtime=1000)
    (tmp_path / "releases" / ".partial").mkdir()
    (tmp_path / "releases" / "README").write_text("x")
    assert release.list_releases(str(tmp_path)) == {"1.0.0": 1000}
    assert release.list_releases(str(tmp_path / "nowhere")) == {}


def test_order_uses_last_activation_then_mtime():
    history = [entry("a", at="2026-01-01T00:00:00.000000Z"), entry("b", at="2026-01-02T00:00:00.000000Z"),
               entry("a", at="2026-01-03T00:00:00.000000Z")]
    jan = release.timestamp_seconds("2026-01-01T12:00:00.000000Z")
    mtimes = {"a": 0, "b": 0, "staged": jan + 86400 * 10, "old": 1000, "between": jan}
    assert release.order_releases(history, mtimes) == ["staged", "a", "b", "between", "old"]


def test_rolled_back_versions_clear_when_activated_again():
    history = [entry("1"), entry("2", before="1"), entry("3", before="2"),
               entry("2", "rollback", before="3"), entry("1", "rollback", before="2")]
    assert release.rolled_back_versions(history) == {"2", "3"}
    assert release.rolled_back_versions(history + [entry("3", before="1")]) == {"2"}


def test_latest_other_skips_excluded_rolled_back_and_incomplete():
    history = [entry("1"), entry("2", before="1"), entry("3", before="2"), entry("4", before="3"),
               entry("3", "rollback", before="4")]
    assert release.latest_other(history, {"3", "4"}, lambda v: True) == "2"
    assert release.latest_other(history, {"3", "4"}, lambda v: v != "2") == "1"
    assert release.latest_other(history, {"3", "4"}, lambda v: False) is None


def test_plan_prune_protects_active_and_previous_whatever_keep_says():
    history = [entry(v, at="2026-01-0%dT00:00:00.000000Z" % i) for i, v in enumerate(["1", "2", "3", "4"], 1)]
    mtimes = dict.fromkeys(["1", "2", "3", "4"], 0)
    assert release.plan_prune(history, mtimes, 1, {"4", "3"}) == ["1", "2"]
    assert release.plan_prune(history, mtimes, 1, {"4", "1"}) == ["2", "3"]
    assert release.plan_prune(history, mtimes, 3, {"4", "3"}) == ["1"]
    assert release.plan_prune(history, mtimes, 10, {"4", "3"}) == []
    assert release.plan_prune(history, mtimes, 0, {"4"}) == []


def test_plan_activate_first_switch_and_no_change(tmp_path):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    root = str(tmp_path)
    record, switched = release.plan_activate(release.inspect(root), "1.0.0", "venv/bin/python", "me", AT)
    assert switched and record["active"] == "1.0.0" and record["previous"] is None
    assert record["history"] == [entry("1.0.0", by="me")]
    os.symlink("releases/1.0.0", tmp_path / "current")
    write_record(tmp_path, **record)
    assert release.plan_activate(release.inspect(root), "1.0.0", "venv/bin/python", "me", AT) == (None, False)
    record, switched = release.plan_activate(release.inspect(root), "1.1.0", "venv/bin/python", "me", AT)
    assert switched and (record["active"], record["previous"]) == ("1.1.0", "1.0.0")
    assert record["history"][-1]["from"] == "1.0.0"


def test_plan_activate_refuses_missing_incomplete_and_foreign_current(tmp_path):
    root = str(tmp_path)
    with pytest.raises(release.ReleaseError, match="does not exist: there is no release to switch to"):
        release.plan_activate(release.inspect(str(tmp_path / "nowhere")), "1.0.0", "venv/bin/python", "me", AT)
    install(tmp_path, "1.0.0", complete=False)
    with pytest.raises(release.ReleaseError, match="release 1.0.0 is incomplete: .*/releases/1.0.0/venv/bin/python does not exist"):
        release.plan_activate(release.inspect(root), "1.0.0", "venv/bin/python", "me", AT)
    with pytest.raises(release.ReleaseError, match="release 2.0.0 is not installed"):
        release.plan_activate(release.inspect(root), "2.0.0", "venv/bin/python", "me", AT)
    (tmp_path / "current").write_text("not a link")
    with pytest.raises(release.ReleaseError, match="is not a symlink"):
        release.plan_activate(release.inspect(root), "1.0.0", "BUILD", "me", AT)


def test_plan_activate_when_the_link_is_right_but_the_record_is_not(tmp_path):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    os.symlink("releases/1.1.0", tmp_path / "current")
    write_record(tmp_path, active="1.0.0", previous=None, history=[entry("1.0.0")])
    record, switched = release.plan_activate(release.inspect(str(tmp_path)), "1.1.0", "venv/bin/python", "me", AT)
    assert not switched
    assert (record["active"], record["previous"]) == ("1.1.0", "1.0.0")


def test_plan_rollback(tmp_path):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
    os.symlink("releases/1.2.0", tmp_path / "current")
    history = [entry("1.0.0"), entry("1.1.0", before="1.0.0"), entry("1.2.0", before="1.1.0")]
    write_record(tmp_path, active="1.2.0", previous="1.1.0", history=history)
    snapshot = release.inspect(str(tmp_path))
    assert release.plan_rollback(snapshot, "1.1.0", "venv/bin/python", "me", AT) == (None, False)
    record, switched = release.plan_rollback(snapshot, "1.2.0", "venv/bin/python", "me", AT)
    assert switched
    assert (record["active"], record["previous"], record["rolled_back_from"]) == ("1.1.0", "1.0.0", "1.2.0")
    assert record["history"][-1] == entry("1.1.0", "rollback", by="me", before="1.2.0")


def test_plan_rollback_refusals(tmp_path):
    install(tmp_path, "1.0.0")
    os.symlink("releases/1.0.0", tmp_path / "current")
    root = str(tmp_path)
    with pytest.raises(release.ReleaseError, match="missing or unreadable"):
        release.plan_rollback(release.inspect(root), None, "venv/bin/python", "me", AT)
    write_record(tmp_path, active="1.0.0", previous="0.9.0")
    with pytest.raises(release.ReleaseError, match="cannot roll back: release 0.9.0 is not installed"):
        release.plan_rollback(release.inspect(root), None, "venv/bin/python", "me", AT)
    write_record(tmp_path, active="1.0.0", previous="1.0.0")
    assert release.inspect(root)["record"]["previous"] == "1.0.0"
    with pytest.raises(release.ReleaseError, match="already current"):
        release.plan_rollback(release.inspect(root), None, "venv/bin/python", "me", AT)


def test_describe_trusts_the_link(tmp_path):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    write_record(tmp_path, active="1.1.0", previous="1.0.0", history=[entry("1.0.0"), entry("1.1.0")])
    os.symlink("releases/1.0.0", tmp_path / "current")
    state = release.describe(release.inspect(str(tmp_path)))
    assert (state["active"], state["previous"]) == ("1.0.0", None)


def test_switch_current_replaces_the_link_in_one_rename(tmp_path, monkeypatch):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    release.switch_current(str(tmp_path), "1.0.0")
    assert os.readlink(tmp_path / "current") == "releases/1.0.0"
    calls = []
    real = os.rename
    monkeypatch.setattr(os, "rename", lambda src, dst: (calls.append((src, dst)), real(src, dst))[1])
    release.switch_current(str(tmp_path), "1.1.0")
    assert len(calls) == 1 and calls[0][1] == str(tmp_path / "current")
    assert os.readlink(tmp_path / "current") == "releases/1.1.0"
    assert sorted(os.listdir(tmp_path)) == ["current", "releases"]


def test_switch_current_leaves_no_temporary_link_when_the_rename_fails(tmp_path, monkeypatch):
    install(tmp_path, "1.0.0")
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "x").write_text("")
    with pytest.raises(OSError):
        release.switch_current(str(tmp_path), "1.0.0")
    assert sorted(os.listdir(tmp_path)) == ["current", "releases"]


def test_remove_release_only_removes_real_directories(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    install(root, "1.0.0")
    os.symlink(str(outside), root / "releases" / "link")
    assert release.remove_release(str(root), "link") is False
    assert release.remove_release(str(root), "..") is False
    assert release.remove_release(str(root), "missing") is False
    assert release.remove_release(str(root), "1.0.0") is True
    assert outside.is_dir() and sorted(os.listdir(root / "releases")) == ["link"]


def test_lock_waits_then_fails_with_the_lock_named(tmp_path):
    with open(tmp_path / ".release.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(release.ReleaseError, match="another run still holds .*/.release.lock"):
            with release.locked(str(tmp_path), timeout=0.2):
                pass
    with release.locked(str(tmp_path), timeout=0.2) as path:
        assert path == str(tmp_path / ".release.lock")


def test_diff_text():
    assert release.diff_text("1.1.0", None, ["1.1.0", "1.0.0"]) == "active: 1.1.0\nprevious: (none)\nreleases: 1.1.0, 1.0.0\n"
    assert release.diff_text(None, None, []) == "active: (none)\nprevious: (none)\nreleases: (none)\n"


def test_dump_record_reads_back():
    record = {"format": 1, "active": "1", "previous": None, "changed_at": AT, "changed_by": "me",
              "rolled_back_from": None, "rollout": "20261204T190000Z-agent-1", "history": [entry("1")]}
    assert release.parse_record(release.dump_record(record)) == record

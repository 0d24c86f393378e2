"""release over real release directories and real links in a temporary ROOT."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from ansible_collections.beam.fleet.plugins.module_utils import release as release_utils
from ansible_collections.beam.fleet.plugins.modules import release
from conftest import run_module


def install(root: Path, version: str, complete: bool = True, mtime: float | None = None) -> Path:
    """A release directory like the roles leave it: venv/bin/python when the install finished."""
    path = root / "releases" / version
    (path / "venv" / "bin").mkdir(parents=True, exist_ok=True)
    if complete:
        (path / "venv" / "bin" / "python").write_text("")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    """Warnings as on a node: returned with the result, not printed by the controller.

    Other tests import controller code (ansible.errors), after which ansible-core sends
    module.warn to the controller's display; each run on a node also starts without warnings.
    """
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(_internal, "is_controller", False)
    monkeypatch.setattr(warnings, "_global_warnings", {})
    monkeypatch.setattr(warnings, "_global_deprecations", {})


def run(root: Path, capsys, **args):
    """One module run; warnings belong to one run, so earlier runs' are dropped first."""
    from ansible.module_utils.common import warnings

    warnings._global_warnings.clear()
    warnings._global_deprecations.clear()
    return run_module(release.main, dict({"root": str(root), "actor": "tester@ctl"}, **args), capsys)


def warning_texts(result) -> list[str]:
    """The warnings of a result, whether plain strings or ansible-core 2.19 summaries."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def current(root: Path) -> str:
    return os.readlink(root / "current")


def record(root: Path) -> dict:
    return json.loads((root / "release.json").read_text())


def snapshot_tree(root: Path) -> dict:
    """Every path under root with its kind, link target or content, and mtime."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            stat = path.lstat()
            if path.is_symlink():
                tree[str(path)] = ("link", os.readlink(path), stat.st_mtime_ns)
            elif path.is_dir():
                tree[str(path)] = ("dir", None, stat.st_mtime_ns)
            else:
                tree[str(path)] = ("file", path.read_bytes(), stat.st_mtime_ns)
    return tree


def test_first_activation(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    result, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed, result
    assert result["changed"] is True
    assert result["switched"] is True
    assert result["active"] == "1.0.0"
    assert result["previous"] is None
    assert result["changed_by"] == "tester@ctl"
    assert result["releases"] == ["1.0.0"]
    assert result["pruned"] == []
    assert current(tmp_path) == "releases/1.0.0"
    saved = record(tmp_path)
    assert saved["format"] == 1
    assert saved["active"] == "1.0.0"
    assert saved["previous"] is None
    assert saved["rolled_back_from"] is None
    assert saved["changed_at"].endswith("Z")
    assert [(e["version"], e["action"], e["by"]) for e in saved["history"]] == [("1.0.0", "activate", "tester@ctl")]
    assert (tmp_path / "release.json").stat().st_mode & 0o777 == 0o644


def test_record_is_0644_whatever_the_umask(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    old = os.umask(0o077)
    try:
        result, failed = run(tmp_path, capsys, version="1.0.0")
    finally:
        os.umask(old)
    assert not failed, result
    assert (tmp_path / "release.json").stat().st_mode & 0o777 == 0o644


def test_reactivation_changes_nothing(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, version="1.0.0", actor="someone@else")
    assert not failed
    assert result["changed"] is False
    assert result["switched"] is False
    assert result["active"] == "1.0.0"
    assert result["changed_by"] == "tester@ctl"
    assert snapshot_tree(tmp_path) == before


def test_switch_records_previous(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert result["changed"] is True and result["switched"] is True
    assert (result["active"], result["previous"]) == ("1.1.0", "1.0.0")
    assert result["releases"] == ["1.1.0", "1.0.0"]
    assert current(tmp_path) == "releases/1.1.0"
    saved = record(tmp_path)
    assert (saved["active"], saved["previous"]) == ("1.1.0", "1.0.0")
    assert [(e["version"], e["from"]) for e in saved["history"]] == [("1.0.0", None), ("1.1.0", "1.0.0")]


def test_previous_comes_from_the_link_not_the_record(tmp_path, capsys):
    """Someone moved current by hand: the release it pointed at is the one to go back to."""
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
    run(tmp_path, capsys, version="1.0.0")
    os.remove(tmp_path / "current")
    os.symlink("releases/1.1.0", tmp_path / "current")
    result, failed = run(tmp_path, capsys, version="1.2.0")
    assert not failed
    assert result["previous"] == "1.1.0"


def test_rollback(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    run(tmp_path, capsys, version="1.1.0")
    result, failed = run(tmp_path, capsys, state="rollback")
    assert not failed, result
    assert result["changed"] is True and result["switched"] is True
    assert result["active"] == "1.0.0"
    assert result["rolled_back_from"] == "1.1.0"
    assert result["previous"] is None
    assert result["pruned"] == []
    assert current(tmp_path) == "releases/1.0.0"
    saved = record(tmp_path)
    assert saved["history"][-1]["action"] == "rollback"
    assert saved["history"][-1]["version"] == "1.0.0"
    assert saved["history"][-1]["from"] == "1.1.0"
    assert (tmp_path / "releases" / "1.1.0").is_dir()


def test_the_rollout_that_made_each_change_is_recorded_and_kept_while_nothing_changes(tmp_path, capsys):
    """The agent reports `rollout` to the receiver: the fleet page's last rollout comes from it."""
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    first, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed
    assert first["rollout"] is None and record(tmp_path)["rollout"] is None
    rolled, failed = run(tmp_path, capsys, version="1.1.0", rollout="20261204T190000Z-agent-1.1.0")
    assert not failed
    assert rolled["rollout"] == record(tmp_path)["rollout"] == "20261204T190000Z-agent-1.1.0"
    again, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert again["changed"] is False
    assert record(tmp_path)["rollout"] == "20261204T190000Z-agent-1.1.0"
    back, failed = run(tmp_path, capsys, state="rollback", from_version="1.1.0", rollout="20261204T190000Z-agent-1.1.0")
    assert not failed
    saved = record(tmp_path)
    assert (back["active"], back["rolled_back_from"], back["rollout"]) == ("1.0.0", "1.1.0", "20261204T190000Z-agent-1.1.0")
    assert (saved["active"], saved["rolled_back_from"], saved["rollout"]) == ("1.0.0", "1.1.0", "20261204T190000Z-agent-1.1.0")
    by_hand, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert by_hand["rollout"] is None and record(tmp_path)["rollout"] is None


def test_a_record_from_before_rollouts_were_recorded_reads_as_none(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    old = record(tmp_path)
    del old["rollout"]
    (tmp_path / "release.json").write_text(json.dumps(old))
    result, failed = run(tmp_path, capsys, state="query")
    assert not failed and result["rollout"] is None and not warning_texts(result)
    (tmp_path / "release.json").write_text(json.dumps(dict(old, rollout=5)))
    result, failed = run(tmp_path, capsys, state="query")
    assert not failed and any("rollout is not a string" in w for w in warning_texts(result)), result


def test_rollback_twice_never_returns_to_the_broken_release(tmp_path, capsys):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
        run(tmp_path, capsys, version=version)
    first, failed = run(tmp_path, capsys, state="rollback")
    assert not failed
    assert (first["active"], first["previous"], first["rolled_back_from"]) == ("1.1.0", "1.0.0", "1.2.0")
    second, failed = run(tmp_path, capsys, state="rollback")
    assert not failed
    assert (second["active"], second["rolled_back_from"]) == ("1.0.0", "1.1.0")
    assert second["previous"] is None
    third, failed = run(tmp_path, capsys, state="rollback")
    assert failed
    assert "records no previous release" in third["msg"]
    assert current(tmp_path) == "releases/1.0.0"


def test_rollback_with_from_version_is_idempotent(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    run(tmp_path, capsys, version="1.1.0")
    result, failed = run(tmp_path, capsys, state="rollback", from_version="1.1.0")
    assert not failed and result["changed"] is True
    before = snapshot_tree(tmp_path)
    again, failed = run(tmp_path, capsys, state="rollback", from_version="1.1.0")
    assert not failed
    assert again["changed"] is False
    assert again["switched"] is False
    assert again["active"] == "1.0.0"
    assert again["rolled_back_from"] == "1.1.0"
    assert snapshot_tree(tmp_path) == before


def test_rollback_from_version_mismatch_changes_nothing(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    run(tmp_path, capsys, version="1.1.0")
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, state="rollback", from_version="9.9.9")
    assert not failed
    assert result["changed"] is False
    assert result["active"] == "1.1.0"
    assert result["previous"] == "1.0.0"
    assert snapshot_tree(tmp_path) == before


def test_rollback_without_previous_fails(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    result, failed = run(tmp_path, capsys, state="rollback")
    assert failed
    assert result["msg"] == "nothing to roll back to: %s records no previous release" % (tmp_path / "release.json")


def test_rollback_to_a_removed_or_incomplete_previous_fails(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    run(tmp_path, capsys, version="1.1.0")
    (tmp_path / "releases" / "1.0.0" / "venv" / "bin" / "python").unlink()
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, state="rollback")
    assert failed
    marker = tmp_path / "releases" / "1.0.0" / "venv" / "bin" / "python"
    assert result["msg"] == "cannot roll back: release 1.0.0 is incomplete: %s does not exist" % marker
    assert snapshot_tree(tmp_path) == before


def test_missing_release_is_refused_and_nothing_changes(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, version="2.0.0")
    assert failed
    assert result["msg"] == "release 2.0.0 is not installed: %s is not a directory" % (tmp_path / "releases" / "2.0.0")
    assert snapshot_tree(tmp_path) == before


def test_incomplete_release_is_refused_and_nothing_changes(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    install(tmp_path, "1.1.0", complete=False)
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert failed
    marker = tmp_path / "releases" / "1.1.0" / "venv" / "bin" / "python"
    assert result["msg"] == "release 1.1.0 is incomplete: %s does not exist" % marker
    assert snapshot_tree(tmp_path) == before
    assert current(tmp_path) == "releases/1.0.0"


def test_complete_marker_is_configurable(tmp_path, capsys):
    path = install(tmp_path, "1.0.0", complete=False)
    (path / "BUILD").write_text("abc\n")
    result, failed = run(tmp_path, capsys, version="1.0.0", complete_marker="BUILD")
    assert not failed and result["active"] == "1.0.0"
    result, failed = run(tmp_path, capsys, version="1.0.0", complete_marker="/etc/passwd")
    assert failed and "complete_marker" in result["msg"]


def test_bad_version_names_are_refused(tmp_path, capsys):
    for name in ("../etc", "a/b", ".hidden", ""):
        result, failed = run(tmp_path, capsys, version=name)
        assert failed, name
        assert result["msg"].startswith("version %r" % name)


def test_prune_with_keep_1_keeps_active_and_previous(tmp_path, capsys):
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        install(tmp_path, version)
        run(tmp_path, capsys, version=version, keep=0)
    assert sorted(os.listdir(tmp_path / "releases")) == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    result, failed = run(tmp_path, capsys, version="1.3.0", keep=1)
    assert not failed
    assert result["changed"] is True
    assert result["switched"] is False
    assert result["pruned"] == ["1.0.0", "1.1.0"]
    assert result["releases"] == ["1.3.0", "1.2.0"]
    assert sorted(os.listdir(tmp_path / "releases")) == ["1.2.0", "1.3.0"]
    assert (result["active"], result["previous"]) == ("1.3.0", "1.2.0")


def test_prune_removes_least_recently_active_first(tmp_path, capsys):
    """Reactivating an old release makes it recent; a never-activated one counts by its mtime."""
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
        run(tmp_path, capsys, version=version, keep=0)
    run(tmp_path, capsys, version="1.0.0", keep=0)
    install(tmp_path, "0.9.0", mtime=1_000_000_000)  # a leftover of an old install
    install(tmp_path, "1.3.0")  # staged for the next deploy, not activated yet
    result, failed = run(tmp_path, capsys, version="1.0.0", keep=3)
    assert not failed
    # active 1.0.0, previous 1.2.0, then the most recent other: the staged 1.3.0
    assert result["pruned"] == ["0.9.0", "1.1.0"]
    assert result["releases"] == ["1.3.0", "1.0.0", "1.2.0"]
    assert sorted(os.listdir(tmp_path / "releases")) == ["1.0.0", "1.2.0", "1.3.0"]


def test_keep_0_never_prunes(tmp_path, capsys):
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        install(tmp_path, version)
        result, failed = run(tmp_path, capsys, version=version, keep=0)
        assert not failed and result["pruned"] == []
    assert len(os.listdir(tmp_path / "releases")) == 5


def test_only_directories_directly_under_releases_are_removed(tmp_path, capsys):
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "keepme").write_text("x")
    for version in ("1.0.0", "1.1.0"):
        install(tmp_path, version, mtime=1_000_000_000)
    os.symlink(str(outside), tmp_path / "releases" / "0.1.0")
    (tmp_path / "releases" / "notes.txt").write_text("x")
    install(tmp_path, "2.0.0")
    result, failed = run(tmp_path, capsys, version="2.0.0", keep=1)
    assert not failed
    assert result["pruned"] == ["1.0.0", "1.1.0"]
    assert result["releases"] == ["2.0.0", "0.1.0"]
    assert (outside / "keepme").exists()
    assert (tmp_path / "releases" / "0.1.0").is_symlink()
    assert (tmp_path / "releases" / "notes.txt").exists()


def test_check_mode_changes_nothing_on_disk(tmp_path, capsys):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
        run(tmp_path, capsys, version=version, keep=0)
    install(tmp_path, "1.3.0")
    before = snapshot_tree(tmp_path)
    result, failed = run(tmp_path, capsys, version="1.3.0", keep=2, _ansible_check_mode=True)
    assert not failed
    assert result["changed"] is True and result["switched"] is True
    assert (result["active"], result["previous"]) == ("1.3.0", "1.2.0")
    assert result["pruned"] == ["1.0.0", "1.1.0"]
    assert snapshot_tree(tmp_path) == before
    rollback, failed = run(tmp_path, capsys, state="rollback", _ansible_check_mode=True)
    assert not failed
    assert (rollback["active"], rollback["rolled_back_from"], rollback["previous"]) == ("1.1.0", "1.2.0", "1.0.0")
    assert snapshot_tree(tmp_path) == before


def test_check_mode_on_a_fresh_root_creates_no_lock(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    result, failed = run(tmp_path, capsys, version="1.0.0", _ansible_check_mode=True)
    assert not failed and result["changed"] is True
    assert sorted(os.listdir(tmp_path)) == ["releases"]


def test_diff_shows_active_previous_and_releases(tmp_path, capsys):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(tmp_path, version)
        run(tmp_path, capsys, version=version, keep=0)
    result, failed = run(tmp_path, capsys, state="rollback", _ansible_diff=True)
    assert not failed
    assert result["diff"]["before"] == "active: 1.2.0\nprevious: 1.1.0\nreleases: 1.2.0, 1.1.0, 1.0.0\n"
    assert result["diff"]["after"] == "active: 1.1.0\nprevious: 1.0.0\nreleases: 1.1.0, 1.2.0, 1.0.0\n"
    install(tmp_path, "1.3.0")
    result, failed = run(tmp_path, capsys, version="1.3.0", keep=2, _ansible_diff=True)
    assert not failed
    assert result["diff"]["before"] == "active: 1.1.0\nprevious: 1.0.0\nreleases: 1.3.0, 1.1.0, 1.2.0, 1.0.0\n"
    assert result["diff"]["after"] == "active: 1.3.0\nprevious: 1.1.0\nreleases: 1.3.0, 1.1.0\n"


def test_diff_of_an_empty_root(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    result, failed = run(tmp_path, capsys, version="1.0.0", _ansible_diff=True, _ansible_check_mode=True)
    assert not failed
    assert result["diff"]["before"] == "active: (none)\nprevious: (none)\nreleases: 1.0.0\n"
    assert result["diff"]["after"] == "active: 1.0.0\nprevious: (none)\nreleases: 1.0.0\n"


def test_corrupt_record_is_recovered_with_a_warning(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    (tmp_path / "release.json").write_text('{"format": 1, "active": "1.0.0", "hist')
    query, failed = run(tmp_path, capsys, state="query")
    assert not failed
    assert query["active"] == "1.0.0" and query["history"] == []
    assert any("release.json is not a valid release record" in w for w in warning_texts(query)), query
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert any(str(tmp_path / "release.json") in w for w in warning_texts(result))
    assert (result["active"], result["previous"]) == ("1.1.0", "1.0.0")
    saved = record(tmp_path)
    assert [e["version"] for e in saved["history"]] == ["1.1.0"]
    rollback, failed = run(tmp_path, capsys, state="rollback")
    assert not failed and rollback["active"] == "1.0.0"


def test_corrupt_record_under_the_active_release_is_rewritten(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    run(tmp_path, capsys, version="1.0.0")
    (tmp_path / "release.json").write_text("[1, 2]")
    result, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed
    assert result["changed"] is True and result["switched"] is False
    assert record(tmp_path)["active"] == "1.0.0"


def test_legacy_link_without_record(tmp_path, capsys):
    """Older installs: an absolute link made by ansible.builtin.file, no release.json."""
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    os.symlink(str(tmp_path / "releases" / "1.0.0"), tmp_path / "current")
    query, failed = run(tmp_path, capsys, state="query")
    assert not failed
    assert (query["active"], query["previous"], query["history"]) == ("1.0.0", None, [])
    assert "warnings" not in query
    rollback, failed = run(tmp_path, capsys, state="rollback")
    assert failed and "no previous release is recorded" in rollback["msg"]
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert (result["active"], result["previous"]) == ("1.1.0", "1.0.0")
    assert current(tmp_path) == "releases/1.1.0"
    back, failed = run(tmp_path, capsys, state="rollback")
    assert not failed and back["active"] == "1.0.0"


def test_legacy_link_to_the_requested_version_records_it_without_switching(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    os.symlink(str(tmp_path / "releases" / "1.0.0"), tmp_path / "current")
    result, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed
    assert result["changed"] is True and result["switched"] is False
    assert os.readlink(tmp_path / "current") == str(tmp_path / "releases" / "1.0.0")
    assert record(tmp_path)["active"] == "1.0.0"
    again, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed and again["changed"] is False


def test_missing_root(tmp_path, capsys):
    root = tmp_path / "nothing-here"
    query, failed = run(root, capsys, state="query")
    assert not failed
    assert query["active"] is None and query["previous"] is None and query["releases"] == []
    result, failed = run(root, capsys, version="1.0.0")
    assert failed
    assert result["msg"].startswith("%s does not exist: there is no release to switch to" % root)
    assert not root.exists()


def test_current_that_is_not_a_link_is_refused(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    (tmp_path / "current").mkdir()
    result, failed = run(tmp_path, capsys, version="1.0.0")
    assert failed
    assert "is not a symlink" in result["msg"]
    assert (tmp_path / "current").is_dir() and not (tmp_path / "current").is_symlink()


def test_switch_is_atomic(tmp_path, capsys, monkeypatch):
    """current is replaced by renaming a new link over it: it exists at every moment."""
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    run(tmp_path, capsys, version="1.0.0")
    renames = []
    real_rename = os.rename

    def watching_rename(src, dst):
        if os.path.basename(str(dst)) == "current":
            assert os.readlink(tmp_path / "current") == "releases/1.0.0"
            assert os.readlink(src) == "releases/1.1.0"
            assert os.path.dirname(str(src)) == str(tmp_path)
        renames.append((str(src), str(dst)))
        return real_rename(src, dst)

    def no_unlink(*args, **kwargs):
        raise AssertionError("current must be replaced by a rename, not removed: unlink%r" % (args,))

    monkeypatch.setattr(os, "rename", watching_rename)
    monkeypatch.setattr(os, "unlink", no_unlink)
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed, result
    assert [dst for src, dst in renames if dst.endswith("/current")] == [str(tmp_path / "current")]
    assert current(tmp_path) == "releases/1.1.0"
    assert sorted(os.listdir(tmp_path)) == [".release.lock", "current", "release.json", "releases"]


def test_history_is_capped_at_50(tmp_path, capsys):
    install(tmp_path, "1.0.0")
    install(tmp_path, "1.1.0")
    entries = [
        {"version": "1.0.0", "action": "activate", "at": "2026-01-01T00:00:%02d.000000Z" % (i % 60), "by": "old", "from": None}
        for i in range(60)
    ]
    (tmp_path / "release.json").write_text(json.dumps({
        "format": 1, "active": "1.0.0", "previous": None, "changed_at": entries[-1]["at"],
        "changed_by": "old", "rolled_back_from": None, "history": entries,
    }))
    os.symlink("releases/1.0.0", tmp_path / "current")
    result, failed = run(tmp_path, capsys, version="1.1.0")
    assert not failed
    assert len(result["history"]) == 50
    assert len(record(tmp_path)["history"]) == 50
    assert result["history"][-1]["version"] == "1.1.0"


def test_actor_defaults_to_the_sudo_user(tmp_path, capsys, monkeypatch):
    install(tmp_path, "1.0.0")
    monkeypatch.setenv("SUDO_USER", "pi")
    monkeypatch.setenv("USER", "root")
    result, failed = run_module(release.main, {"root": str(tmp_path), "version": "1.0.0"}, capsys)
    assert not failed and result["changed_by"] == "pi"


def test_a_second_run_waits_for_the_lock(tmp_path, capsys, monkeypatch):
    install(tmp_path, "1.0.0")
    monkeypatch.setattr(release_utils, "LOCK_TIMEOUT", 0.3)
    with open(tmp_path / ".release.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result, failed = run(tmp_path, capsys, version="1.0.0")
    assert failed
    assert "another run still holds %s" % (tmp_path / ".release.lock") in result["msg"]
    assert not (tmp_path / "current").exists()
    result, failed = run(tmp_path, capsys, version="1.0.0")
    assert not failed and result["active"] == "1.0.0"


def test_options_for_the_wrong_state_are_refused(tmp_path, capsys):
    result, failed = run(tmp_path, capsys, state="rollback", version="1.0.0")
    assert failed and "version is only for state=active" in result["msg"]
    result, failed = run(tmp_path, capsys, version="1.0.0", from_version="0.9.0")
    assert failed and "from_version is only for state=rollback" in result["msg"]
    result, failed = run(tmp_path, capsys)
    assert failed and "version" in result["msg"]
    result, failed = run(tmp_path, capsys, version="1.0.0", keep=-1)
    assert failed and "keep" in result["msg"]

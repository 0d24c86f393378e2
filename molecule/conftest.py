"""Shared testinfra helpers for every scenario: the journal on failure, unit checks."""

from __future__ import annotations

import re

import pytest

EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")
MAX_EXPOSURE = 2.5


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can see whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture(autouse=True)
def journal_on_failure(request, host):
    """When a test fails, print the node's beam journals: the first thing anyone asks for."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        journal = host.run(
            "journalctl --no-pager --lines 60 --unit 'beam-*' --output short-iso"
        ).stdout
        print(f"\n--- journal of {host.backend.get_hostname()} ---\n{journal}")


def unit_exposure(host, unit: str) -> float:
    """`systemd-analyze security` overall exposure of a unit (0 best, 10 worst)."""
    result = host.run(f"systemd-analyze security --no-pager {unit}")
    assert result.rc == 0, result.stderr
    match = EXPOSURE.search(result.stdout)
    assert match, result.stdout
    return float(match.group(1))

"""The docs' curl examples, copied as written, against a real receiver behind TLS.

Every ```sh block in docs/*.md that calls curl is run in file order with bash (errexit,
pipefail), with BEAM_URL, BEAM_CA, DEVICE, DEVICE_TOKEN and OPERATOR_TOKEN set as the docs
tell the reader to set them. An answer the block shows (a `# {...}` line) must be the
answer the receiver gave.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.constants import DEVICE, DEVICE_TOKEN, OPERATOR_TOKEN
from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver
from tests.support.tls import FleetPki, TLSProxy, make_fleet_pki

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def curl_examples() -> list[tuple[str, str]]:
    """(where, script) of every sh block that calls curl, in file and line order."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if re.search(r"^\s*curl ", match.group(1), re.MULTILINE):
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"docs/{page.name}:{line}", match.group(1)))
    return found


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    with configure_receiver(tmp_path / "receiver", expected_nodes=agent_nodes(DEVICE)) as served:
        yield served


@pytest.fixture
def pki(tmp_path: Path) -> FleetPki:
    return make_fleet_pki(tmp_path / "pki")


def test_there_are_examples_to_run() -> None:
    calls = sum(
        len(re.findall(r"^\s*curl ", script, re.MULTILINE)) for _, script in curl_examples()
    )
    assert calls >= 9, "the docs lost their curl examples"


def test_every_curl_example_in_the_docs_works_as_written(
    receiver: ReceiverProcess, pki: FleetPki
) -> None:
    with TLSProxy(pki.server, receiver.port) as front:
        env = dict(
            os.environ,
            BEAM_URL=front.url("localhost"),
            BEAM_CA=str(pki.ca.cert),
            DEVICE=DEVICE,
            DEVICE_TOKEN=DEVICE_TOKEN,
            OPERATOR_TOKEN=OPERATOR_TOKEN,
        )
        for where, script in curl_examples():
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert run.returncode == 0, f"{where}: exit {run.returncode}\n{run.stdout}{run.stderr}"
            shown = [json.loads(line[2:]) for line in script.splitlines() if line.startswith("# {")]
            if shown:
                answers = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
                assert answers == shown, (
                    f"{where}: the docs show {shown}, the receiver said {answers}"
                )
    stored = sorted(reading["seq"] for reading in receiver.readings(DEVICE))
    assert stored == [1, 2]  # the examples' readings, each stored once

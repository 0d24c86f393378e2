#!/usr/bin/env bash
# Create or refresh .venv-ansible: Ansible, Molecule, linters (molecule/requirements.txt),
# plus this repository's packages so the collection's unit tests can compare the
# controller's view with the real agent and receiver.
#
# Why a separate venv from .venv: ansible-core and ansible-lint pin their own dependency
# ranges; keeping them apart lets either side upgrade without breaking the other.
#
# Usage: molecule/scripts/ansible-venv.sh   (prints the venv's bin directory on stdout)
# Env:   BEAM_ANSIBLE_VENV (default <repo>/.venv-ansible), PYTHON (default python3)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${BEAM_ANSIBLE_VENV:-$REPO/.venv-ansible}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="$REPO/molecule/requirements.txt"
STAMP="$VENV/.installed"

say() { printf '[ansible-venv] %s\n' "$*" >&2; }

want="$(cat "$REQUIREMENTS" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/ansible-playbook" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    echo "$VENV/bin"
    exit 0
fi
say "installing Ansible tooling into $VENV (about a minute)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -r "$REQUIREMENTS"
"$VENV/bin/pip" install --quiet -e "$REPO[agent,receiver]"
echo "$want" > "$STAMP"
echo "$VENV/bin"

#!/usr/bin/env bash
# Run a command as an operator does in their own project directory, with beam.fleet installed
# from its release tarball: nothing of this repository on any path, no ansible.cfg of ours,
# no ANSIBLE_* or MOLECULE_* variable; HOME is the project's home/ (a fresh collections path,
# ~/.ansible/collections, and a fresh ~/.cache/beam-fleet). Ansible is pip's `ansible`
# package alone, in .venv-operator (made on first use; .venv-ansible also holds this
# repository's packages, which an operator's Python does not have).
#   molecule/scripts/operator.sh PROJECT_DIR COMMAND [ARG...]
# Env passed through: PIP_* (this machine's package index settings), ANSIBLE_NOCOLOR,
# ANSIBLE_FORCE_COLOR, DOCKER_HOST.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$REPO/.venv-operator"
project="$1"
shift
want="$(grep -E '^ansible(-core)?==' "$REPO/molecule/requirements.txt" | sort | tr '\n' ' ')"
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
    echo "[operator] installing $want into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086  # the pins are separate arguments
    "$VENV/bin/pip" install --quiet $want >&2
    echo "$want" >"$VENV/.installed"
fi
mkdir -p "$project/home"
keep=()
while IFS='=' read -r name _; do
    case "$name" in
        PIP_*|ANSIBLE_NOCOLOR|ANSIBLE_FORCE_COLOR|DOCKER_HOST) keep+=("$name=${!name}") ;;
    esac
done < <(env)
cd "$project"
exec env -i PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME="$project/home" \
    LANG=C.UTF-8 "${keep[@]}" "$@"

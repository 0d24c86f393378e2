#!/usr/bin/env bash
# Everything CI runs for the Ansible side, from a fresh clone on a fresh machine:
#   1. .venv-ansible (molecule/requirements.txt) and .venv-ansible-test (ansible-test)
#   2. a Docker engine and the node images, x86 and ARM (molecule/scripts/docker-setup.sh --arm)
#   3. ansible-lint, production profile
#   4. the release tarball built (scripts/build_collection.py, as `make collection`); on its
#      unpacked contents: ansible-test sanity (Python 3.11, no --docker) and the collection's
#      unit tests; a Python 3.9 compile check of the code that runs on nodes
#   5. the changelog fragments (antsibull-changelog lint) and the plugin and role
#      documentation (antsibull-docs lint-collection-docs)
#   6. every Molecule scenario: base, agent, receiver, fleet, rollout, ssh_access
# Prints how long each step took. Usage: molecule/scripts/ci.sh [scenario ...]
# Env: BEAM_CI_LOGS (default: a new /tmp/beam-ci-logs.XXXXXX) keeps each step's full output.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
COLLECTION="$REPO/collections/ansible_collections/beam/fleet"
LOGS="${BEAM_CI_LOGS:-$(mktemp -d /tmp/beam-ci-logs.XXXXXX)}"
SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -eq 0 ] && SCENARIOS=(base agent receiver fleet rollout ssh_access)
mkdir -p "$LOGS"
cd "$REPO"

started=$SECONDS
summary=()
step() {  # step NAME COMMAND...: run, log, time; on failure show the log's end and stop
    local name="$1" t0=$SECONDS log
    shift
    log="$LOGS/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '-').log"
    printf '\n==> %s\n' "$name"
    if "$@" >"$log" 2>&1; then
        summary+=("$(printf '%-34s ok    %4d s' "$name" $((SECONDS - t0)))")
        tail -n 3 "$log"
    else
        summary+=("$(printf '%-34s FAIL  %4d s' "$name" $((SECONDS - t0)))")
        tail -n 150 "$log"
        printf '\n%s failed; full log: %s\n' "$name" "$log"
        printf '%s\n' "${summary[@]}"
        exit 1
    fi
}

ansible_venv() { "$REPO/molecule/scripts/ansible-venv.sh"; }
sanity_venv() {
    local venv="$REPO/.venv-ansible-test" core
    core="$(grep -E '^ansible-core==' "$REPO/molecule/requirements.txt")"
    if [ ! -x "$venv/bin/ansible-test" ] || ! "$venv/bin/pip" show ansible-core 2>/dev/null | grep -q "^Version: ${core#ansible-core==}$"; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet "$core"
    fi
    # ansible-test fetches a pip bootstrap script from a host we cannot reach; use ours
    local pip_version
    pip_version="$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages; import inspect, re; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(get_venv_packages)).group(1))')"
    mkdir -p "$HOME/.ansible/test/cache"
    cp "$REPO/molecule/scripts/get-pip-standin.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
}
lint() { PATH="$REPO/.venv-ansible/bin:$PATH" ansible-lint; }
TARBALL_TREE=""
tarball() {
    # The release tarball, unpacked where ansible-test wants a collection: what operators install
    # is what sanity and the unit tests check.
    local out
    out="$(mktemp -d)"
    "$REPO/.venv-ansible/bin/python" "$REPO/scripts/build_collection.py" --output "$out/dist"
    mkdir -p "$out/ansible_collections/beam/fleet"
    tar -xzf "$out"/dist/beam-fleet-*.tar.gz -C "$out/ansible_collections/beam/fleet"
    TARBALL_TREE="$out/ansible_collections/beam/fleet"
    echo "unpacked into $TARBALL_TREE"
}
sanity() {
    (cd "$TARBALL_TREE" &&
        PATH="$REPO/.venv-ansible-test/bin:$PATH" ansible-test sanity --python 3.11 --requirements --color no)
}
docs_lint() {
    (cd "$COLLECTION" && PATH="$REPO/.venv-ansible/bin:$PATH" antsibull-changelog lint) &&
    (cd "$COLLECTION" && PATH="$REPO/.venv-ansible/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$REPO/collections" \
        antsibull-docs lint-collection-docs --plugin-docs .)
}
compile39() {
    # Raspberry Pi OS bullseye runs modules with Python 3.9
    local py39="" candidate
    for candidate in python3.9 "$HOME"/.pyenv/versions/3.9*/bin/python3.9 /usr/bin/python3.9; do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then
            py39="$candidate"
            break
        fi
    done
    if [ -z "$py39" ]; then
        echo "no working python3.9: node code compiled with $(python3 --version) only"
        py39=python3
    fi
    "$py39" -m py_compile "$COLLECTION"/plugins/modules/*.py "$COLLECTION"/plugins/module_utils/*.py
    echo "plugins compile on $("$py39" --version)"
}
units() {
    (cd "$TARBALL_TREE/tests/unit" &&
        BEAM_FLEET_REPOSITORY="$REPO" "$REPO/.venv-ansible/bin/python" -m pytest -q -p no:cacheprovider)
}
scenario() { PATH="$REPO/.venv-ansible/bin:$PATH" molecule test -s "$1"; }
molecule_lock() {
    # Scenarios name their containers (beam-mol-*): two runs on one machine would destroy
    # each other's, so a second run waits here for the first.
    exec 9>/tmp/beam-fleet-molecule.lock
    if ! flock --nonblock 9; then
        echo "another Molecule run holds /tmp/beam-fleet-molecule.lock; waiting"
        flock 9
    fi
}

step "ansible venv" ansible_venv
step "ansible-test venv" sanity_venv
step "docker engine and node images" "$REPO/molecule/scripts/docker-setup.sh" --arm
step "ansible-lint (production)" lint
step "collection tarball" tarball
step "ansible-test sanity (tarball)" sanity
step "python 3.9 compile" compile39
step "collection unit tests (tarball)" units
step "changelog and docs lint" docs_lint
molecule_lock
for name in "${SCENARIOS[@]}"; do
    step "molecule $name" scenario "$name"
done

printf '\n'
printf '%s\n' "${summary[@]}"
printf 'ansible CI passed in %d s\n' $((SECONDS - started))

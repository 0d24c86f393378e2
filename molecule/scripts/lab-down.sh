#!/usr/bin/env bash
# Tear the lab down: remove its containers and network. The controller secrets in
# inventories/lab/.secrets stay (a new lab reuses them) unless --purge is given, which
# also removes them and the built wheelhouses in dist/wheelhouse.
#
# Usage: molecule/scripts/lab-down.sh [--purge]
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
say() { printf '[lab] %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    say "the Docker engine is not running: no lab to tear down"
else
    containers="$(docker ps --all --quiet --filter label=beam-lab=1)"
    if [ -n "$containers" ]; then
        # shellcheck disable=SC2086
        docker rm --force $containers >/dev/null
        say "removed $(echo "$containers" | wc -l) lab containers"
    fi
    networks="$(docker network ls --quiet --filter label=beam-lab=1)"
    if [ -n "$networks" ]; then
        # shellcheck disable=SC2086
        docker network rm $networks >/dev/null
        say "removed the beam-lab network"
    fi
fi
rm -f "$REPO/inventories/lab/fleet-more.yml" "$REPO/inventories/lab/fleet-arch.yml"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$REPO/inventories/lab/.secrets" "$REPO/dist/wheelhouse"
    say "removed the lab's controller secrets and the built wheelhouses"
fi

#!/usr/bin/env bash
# Bring up the lab fleet: a receiver and three agents, each a systemd container on this
# machine, deployed with playbooks/site.yml from inventories/lab exactly as an operator
# deploys real nodes; then print the fleet report and the dashboard URL.
#
# Usage: molecule/scripts/lab-up.sh          (again at any time: it converges, changing nothing)
# Env:   BEAM_LAB_PORT (default 8080): the dashboard's port on 127.0.0.1
# Undo:  molecule/scripts/lab-down.sh
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PORT="${BEAM_LAB_PORT:-8080}"
IMAGE="${BEAM_NODE_IMAGE:-beam-fleet/node:bookworm}"
NETWORK=beam-lab
NODES=(beam-lab-receiver beam-lab-agent-1 beam-lab-agent-2 beam-lab-agent-3)

say() { printf '[lab] %s\n' "$*" >&2; }

BIN="$("$REPO/molecule/scripts/ansible-venv.sh")"
export PATH="$BIN:$PATH"
"$REPO/molecule/scripts/docker-setup.sh"

docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create --label beam-lab=1 "$NETWORK" >/dev/null

for node in "${NODES[@]}"; do
    state="$(docker inspect --format '{{.State.Status}}' "$node" 2>/dev/null || true)"
    if [ "$state" = running ]; then
        continue
    elif [ -n "$state" ]; then
        docker start "$node" >/dev/null
        continue
    fi
    publish=()
    [ "$node" = beam-lab-receiver ] && publish=(--publish "127.0.0.1:$PORT:8000")
    say "starting $node"
    # systemd as PID 1 without --privileged (see docs/collection.md, "Containers")
    docker run --detach --name "$node" --hostname "$node" --label beam-lab=1 \
        --network "$NETWORK" "${publish[@]}" \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined \
        --cgroupns=host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw \
        --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
        "$IMAGE" >/dev/null
done

for node in "${NODES[@]}"; do
    for _ in $(seq 1 60); do
        state="$(docker exec "$node" systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running|degraded) break ;; esac
        sleep 1
    done
done

cd "$REPO"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
say "deploying: ansible-playbook playbooks/site.yml (inventory inventories/lab)"
ansible-playbook playbooks/site.yml
say "fleet report: ansible-playbook playbooks/status.yml"
ansible-playbook playbooks/status.yml

password_file="$REPO/inventories/lab/.secrets/users/admin"
cat <<EOT

  The lab is up.
  Dashboard:  http://127.0.0.1:$PORT/
  Login:      admin / $(cat "$password_file")   (kept in inventories/lab/.secrets/users/admin)
  Report:     $BIN/ansible-playbook playbooks/status.yml
  Tear down:  molecule/scripts/lab-down.sh

EOT

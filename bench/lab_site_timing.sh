#!/usr/bin/env bash
# beam-fleet deploy timing on the lab grown to N agents: prints figures, asserts nothing.
#
# From the root of a checkout (this one, or another commit's worktree for a baseline):
#   1. fresh lab containers (lab-down, then lab-up with BEAM_LAB_DEPLOY=0) and no fact cache;
#   2. timed: ansible-playbook beam.fleet.site on the fresh nodes;
#   3. timed: the same again, with nothing to change (its recap must say changed=0).
# For each run: wall-clock seconds and, from the recap summed over the hosts, the tasks
# executed (ok + skipped + failed; ok includes changed), changed and skipped.
#
# Usage: bench/lab_site_timing.sh [AGENTS]        (default 12; the lab's docker connection)
#        bench/lab_site_timing.sh --no-change-only  (time site.yml on the lab as it stands)
# A baseline: git worktree add /tmp/base <rev>; copy molecule/scripts/lab-{up,down}.sh and this
# script into it; run it there, then here. Nothing else should run on the machine meanwhile.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=(fresh no-change)
if [ "${1:-}" = --no-change-only ]; then RUNS=(no-change); shift; fi
AGENTS="${1:-12}"
LOGS="$(mktemp -d /tmp/beam-lab-timing.XXXXXX)"
cd "$REPO"

if [ "${RUNS[0]}" = fresh ]; then
    molecule/scripts/lab-down.sh
    rm -rf .cache/ansible-facts
    BEAM_LAB_AGENTS="$AGENTS" BEAM_LAB_DEPLOY=0 molecule/scripts/lab-up.sh
else
    AGENTS="$(docker ps --filter label=beam-lab=1 --format '{{.Names}}' | grep -c '^beam-lab-agent-')"
fi
BIN="$("$REPO/molecule/scripts/ansible-venv.sh")"
export ANSIBLE_CONFIG="$REPO/ansible.cfg" ANSIBLE_NOCOLOR=1

recap() {  # recap LOG: "tasks=N changed=N skipped=N" summed over the PLAY RECAP's hosts
    awk '/^PLAY RECAP/ {on=1; next} on && /ok=/ {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2] } }
         END { printf "tasks=%d changed=%d skipped=%d failed=%d", v["ok"] + v["skipped"] + v["failed"], v["changed"], v["skipped"], v["failed"] }' "$1"
}

for run in "${RUNS[@]}"; do
    t0=$(date +%s.%N)
    "$BIN/ansible-playbook" beam.fleet.site >"$LOGS/$run.log" 2>&1 || { tail -n 40 "$LOGS/$run.log"; exit 1; }
    t1=$(date +%s.%N)
    printf '%-10s %6.1f s  %s  (commit %s, %s agents, load %s)\n' "$run" "$(awk "BEGIN { print $t1 - $t0 }")" \
        "$(recap "$LOGS/$run.log")" "$(git rev-parse --short HEAD)" "$AGENTS" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "logs: $LOGS"

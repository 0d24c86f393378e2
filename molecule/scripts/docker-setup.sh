#!/usr/bin/env bash
# Make a Docker engine answer and the node image exist, on a fresh machine or a used one.
#
# Why a script: these machines ship only the docker client, pull no image from any
# registry, and end every process with the session. So each run installs the engine when
# missing (root on Debian/Ubuntu only), starts dockerd when it is not answering, and builds
# the systemd node image from Debian's packages with debootstrap once per machine.
# See docs/collection.md ("The lab and Molecule") for the recipe and its reasons.
#
# Usage: molecule/scripts/docker-setup.sh        (idempotent; prints what it did)
# Env:   BEAM_NODE_IMAGE (default beam-fleet/node:bookworm)
#        BEAM_DEBIAN_MIRROR (default: debootstrap's own default mirror)
set -euo pipefail

IMAGE="${BEAM_NODE_IMAGE:-beam-fleet/node:bookworm}"
SUITE=bookworm
# Bump when the recipe below changes: an image built by an older recipe is rebuilt.
RECIPE=2
PACKAGES=systemd,systemd-sysv,python3,python3-venv,python3-apt,dbus,iproute2,procps,sudo,openssh-server,ca-certificates
DOCKERD_LOG="${BEAM_DOCKERD_LOG:-/var/log/beam-dockerd.log}"

say() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! is_root || ! is_debian_like; then
        die "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install ${missing[*]}) or run this script as root on Debian/Ubuntu"
    fi
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

start_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    is_root || die "the Docker engine is not answering and only root may start it here; start dockerd or add yourself to the docker group"
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the engine must outlive this script and the CI step that called it
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null 9>&- &
    local waited=0
    until docker info >/dev/null 2>&1; do
        sleep 1
        waited=$((waited + 1))
        if [ "$waited" -ge 120 ]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within 120 s"
        fi
    done
    say "dockerd answered after ${waited} s"
}

build_image() {
    local built
    built="$(docker image inspect --format '{{ index .Config.Labels "beam.recipe" }}' "$IMAGE" 2>/dev/null || true)"
    if [ "$built" = "$RECIPE" ]; then
        say "image $IMAGE present"
        return 0
    fi
    [ -n "$built" ] && say "image $IMAGE was built by recipe '$built'; rebuilding with recipe $RECIPE"
    is_root || die "building $IMAGE needs root (debootstrap)"
    local rootfs
    rootfs="$(mktemp -d /var/tmp/beam-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' RETURN
    say "building $IMAGE with debootstrap (about a minute)"
    # shellcheck disable=SC2086
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" ${BEAM_DEBIAN_MIRROR:-} \
        >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; die "debootstrap failed (log above)"; }
    rm -f "$rootfs.log"
    # Smaller image, and no stale machine-id shared by every container. The package lists
    # go too, and their directory is dated 1970, so apt (and Ansible's cache_valid_time)
    # knows to fetch fresh ones instead of trusting an empty cache.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$rootfs"/var/lib/apt/lists/partial
    touch -d @0 "$rootfs"/var/lib/apt/lists
    : > "$rootfs/etc/machine-id"
    tar -C "$rootfs" -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' -c "LABEL beam.recipe=$RECIPE" \
        - "$IMAGE" >/dev/null
    say "image $IMAGE built"
}

install_packages
start_engine
build_image

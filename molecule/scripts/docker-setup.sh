#!/usr/bin/env bash
# Make a Docker engine answer and the node image exist, on a fresh machine or a used one.
#
# Why a script: these machines ship only the docker client, pull no image from any
# registry, and end every process with the session. So each run installs the engine when
# missing (root on Debian/Ubuntu only), starts dockerd when it is not answering, and builds
# the systemd node image from Debian's packages with debootstrap once per machine.
# See docs/collection.md ("The lab and Molecule") for the recipe and its reasons.
#
# ARM nodes (Raspberry Pis) run as the same systemd containers through qemu's user-mode
# emulation: --arm also registers the emulators (binfmt_misc, qemu-user-static) and builds
# beam-fleet/node:bookworm-arm64 (Raspberry Pi OS 12, 64-bit) and
# beam-fleet/node:bullseye-armhf (Raspberry Pi OS 11, 32-bit, Python 3.9). Each is built
# once per machine, like the x86 image (about 6 minutes each under emulation).
#
# Usage: molecule/scripts/docker-setup.sh [--arm]   (idempotent; prints what it did)
# Env:   BEAM_NODE_IMAGE (default beam-fleet/node:bookworm)
#        BEAM_DEBIAN_MIRROR (default: debootstrap's own default mirror)
set -euo pipefail

IMAGE="${BEAM_NODE_IMAGE:-beam-fleet/node:bookworm}"
ARM_IMAGES=("beam-fleet/node:bookworm-arm64 bookworm arm64" "beam-fleet/node:bullseye-armhf bullseye armhf")
# Bump when the recipe below changes: an image built by an older recipe is rebuilt.
RECIPE=2
# ARM images: the same recipe, plus the units that fail under qemu-user masked
ARM_RECIPE=1
# Under qemu-user these fail (they need syscalls qemu does not emulate) and leave the
# system "degraded"; the node image's /etc and /var are complete without them.
ARM_MASKED=(systemd-sysusers.service systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service)
PACKAGES=systemd,systemd-sysv,python3,python3-venv,python3-apt,dbus,iproute2,procps,sudo,openssh-server,ca-certificates
DOCKERD_LOG="${BEAM_DOCKERD_LOG:-/var/log/beam-dockerd.log}"

say() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

install_packages() {
    local missing=()
    if [ "$WITH_ARM" = 1 ]; then
        [ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
        command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
    fi
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

register_emulators() {
    # binfmt_misc is not mounted by default; the F flag makes containers use the emulators
    [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    local name
    for name in qemu-aarch64 qemu-arm; do
        if ! grep -q '^enabled' "/proc/sys/fs/binfmt_misc/$name" 2>/dev/null; then
            say "registering $name"
            update-binfmts --enable "$name" >/dev/null 2>&1 || update-binfmts --import "$name" >/dev/null
        fi
        grep -q '^flags: .*F' "/proc/sys/fs/binfmt_misc/$name" ||
            die "$name is registered without the F flag; containers cannot use it (reinstall qemu-user-static)"
    done
}

build_image() {  # build_image IMAGE SUITE ARCH RECIPE
    local image="$1" suite="$2" arch="$3" recipe="$4" built
    built="$(docker image inspect --format '{{ index .Config.Labels "beam.recipe" }}' "$image" 2>/dev/null || true)"
    if [ "$built" = "$recipe" ]; then
        say "image $image present"
        return 0
    fi
    [ -n "$built" ] && say "image $image was built by recipe '$built'; rebuilding with recipe $recipe"
    is_root || die "building $image needs root (debootstrap)"
    local rootfs
    rootfs="$(mktemp -d /var/tmp/beam-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' RETURN
    say "building $image ($suite, $arch) with debootstrap (a minute natively, about 6 under emulation)"
    # shellcheck disable=SC2086
    debootstrap --arch="$arch" --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" ${BEAM_DEBIAN_MIRROR:-} \
        >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; die "debootstrap failed (log above)"; }
    rm -f "$rootfs.log"
    # Smaller image, and no stale machine-id shared by every container. The package lists
    # go too, and their directory is dated 1970, so apt (and Ansible's cache_valid_time)
    # knows to fetch fresh ones instead of trusting an empty cache.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$rootfs"/var/lib/apt/lists/partial
    touch -d @0 "$rootfs"/var/lib/apt/lists
    : > "$rootfs/etc/machine-id"
    if [ "$arch" != amd64 ]; then
        local unit
        for unit in "${ARM_MASKED[@]}"; do ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"; done
    fi
    # docker import records every image as amd64; run ARM ones without --platform (binfmt
    # runs their binaries)
    tar -C "$rootfs" -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' -c "LABEL beam.recipe=$recipe" \
        -c "LABEL beam.arch=$arch" - "$image" >/dev/null
    say "image $image built"
}

WITH_ARM=0
[ "${1:-}" = --arm ] && WITH_ARM=1
install_packages
start_engine
build_image "$IMAGE" bookworm amd64 "$RECIPE"
if [ "$WITH_ARM" = 1 ]; then
    register_emulators
    for spec in "${ARM_IMAGES[@]}"; do
        # shellcheck disable=SC2086  # IMAGE SUITE ARCH
        build_image $spec "$ARM_RECIPE"
    done
fi

#!/usr/bin/env bash
# Builds a minimal Debian bookworm image locally, for machines with a Docker Engine but no
# registry to pull `debian:bookworm-slim` from: debootstrap --variant=minbase into a temp
# folder (packages from Debian's own mirror), then `docker import`. Idempotent: an image
# already present under that name is kept.
#
#   docker/base-image.sh [IMAGE]      default IMAGE: ember-base:bookworm
#
# Needs root (or sudo) for debootstrap; installs debootstrap when missing.
set -euo pipefail
image="${1:-ember-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap
fi
root="$(mktemp -d /tmp/ember-base.XXXXXX)"
trap '$SUDO rm -rf "$root"' EXIT
echo "debootstrap bookworm (minbase) into $root"
# iproute2: `tc netem` for the testnet's latency and loss faults inside containers.
$SUDO debootstrap --variant=minbase --include=iproute2,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2
  echo "debootstrap failed (full log: $root.log)" >&2
  exit 1
}
rm -f "$root.log"
# Shrink: package caches and docs are not needed at run time.
$SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
$SUDO tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "built base image $image"

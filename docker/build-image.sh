#!/usr/bin/env bash
# Builds Ember's runtime image from binaries already built by cargo.
#
#   docker/build-image.sh BIN_DIR [IMAGE] [BASE]
#
#   BIN_DIR  folder holding ember-node, ember-cli, ember-wallet, ember-testnet
#            (e.g. target/release)
#   IMAGE    tag to build [default: ember:local]
#   BASE     Debian bookworm image to start from [default: ember-base:bookworm, made here
#            by docker/base-image.sh when missing; pass debian:bookworm-slim where a
#            registry is reachable]
#
# The binaries are stripped into a temp build context, so a debug build makes a small image
# too. The binaries must be built on a glibc no newer than bookworm's (2.36).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${1:?usage: docker/build-image.sh BIN_DIR [IMAGE] [BASE]}"
image="${2:-ember:local}"
base="${3:-ember-base:bookworm}"

if ! docker info >/dev/null 2>&1; then
  echo "no Docker daemon answers (docker info failed): start Docker, or add yourself to the docker group" >&2
  exit 1
fi
if [ "$base" = "ember-base:bookworm" ]; then
  "$here/base-image.sh" "$base"
fi
ctx="$(mktemp -d /tmp/ember-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/bin"
for b in ember-node ember-cli ember-wallet ember-testnet; do
  if [ ! -x "$bin_dir/$b" ]; then
    echo "$bin_dir/$b is missing: build first (cargo build --release --workspace --all-targets)" >&2
    exit 1
  fi
  strip -o "$ctx/bin/$b" "$bin_dir/$b" 2>/dev/null || cp "$bin_dir/$b" "$ctx/bin/$b"
done
cp "$here/Dockerfile" "$ctx/Dockerfile"
# Quiet unless it fails (the legacy builder prints a deprecation notice on every build).
if ! docker build -q --build-arg "BASE=$base" -t "$image" "$ctx" >"$ctx.log" 2>&1; then
  cat "$ctx.log" >&2
  rm -f "$ctx.log"
  exit 1
fi
rm -f "$ctx.log"
echo "built image $image (from $base, binaries of $bin_dir)"

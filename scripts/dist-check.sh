#!/usr/bin/env bash
# Runs the portable binary (scripts/dist.sh) in a real older userland: a Debian bullseye minbase
# root (glibc 2.31), debootstrapped from the configured apt mirror once per machine and cached
# under /var/tmp (like scripts/node-image.sh). In a chroot there: `darkport --version`, then
# `darkport registry serve` on 127.0.0.1 (a free port, a temp root), which must answer
# `GET /v2/` to curl from the host. Then the same chroot must REFUSE the non-portable debug
# build (linked against this machine's glibc), so the check is shown to be able to fail.
# Usage: scripts/dist-check.sh [BINARY]   (default: the newest dist/darkport-*-x86_64-linux,
# built by scripts/dist.sh when there is none). Needs root (debootstrap, mount, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
log() { echo "dist-check: $*" >&2; }
if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=CARGO_TARGET_DIR,PATH "$0" "$@"
fi
t0=$(date +%s)

bin=${1:-}
if [ -z "$bin" ]; then
  bin=$(ls -t dist/darkport-*-x86_64-linux 2>/dev/null | head -n1 || true)
  [ -n "$bin" ] || bin=$(./scripts/dist.sh)
fi
if [ -f "$bin.sha256" ]; then
  (cd "$(dirname "$bin")" && sha256sum -c --quiet "$(basename "$bin").sha256")
  log "$bin.sha256: OK"
fi
debug_bin="$CARGO_TARGET_DIR/debug/darkport"
if [ ! -x "$debug_bin" ]; then
  log "building the debug binary for the negative check (cargo build)"
  cargo build >&2
fi

# The bullseye root, once per machine.
SUITE=bullseye
RECIPE_VERSION=1
rootfs="/var/tmp/darkport-$SUITE-rootfs-$( { echo "$RECIPE_VERSION $SUITE minbase"; } | sha256sum | cut -c1-12)"
# One check at a time per machine (the root and its /proc mount are shared).
exec 9>"/var/tmp/darkport-$SUITE-rootfs.lock"
flock 9
if [ ! -x "$rootfs/bin/sh" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  mirror=${mirror:-http://deb.debian.org/debian}
  work=$(mktemp -d "/var/tmp/darkport-$SUITE-rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  s=$(date +%s)
  log "debootstrap --variant=minbase $SUITE from $mirror into $rootfs (once per machine)"
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb
  mv "$work/rootfs" "$rootfs"
  rm -rf "$work"
  trap - EXIT
  log "debootstrap took $(( $(date +%s) - s ))s"
else
  log "using the cached $SUITE root $rootfs"
fi

# One run: its own directory in the root, /proc mounted while it runs.
run=$(mktemp -d "$rootfs/tmp/dist-check.XXXXXX")
rel=/tmp/$(basename "$run")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  umount "$rootfs/proc" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
mountpoint -q "$rootfs/proc" || mount -t proc proc "$rootfs/proc"
cp "$bin" "$run/darkport"
cp "$debug_bin" "$run/darkport-debug"
mkdir -p "$run/root"

log "chroot glibc: $(chroot "$rootfs" /usr/bin/ldd --version | head -n1)"
log "chroot os: $(. "$rootfs/etc/os-release" && echo "$PRETTY_NAME")"
log "\$ chroot $rootfs $rel/darkport --version"
chroot "$rootfs" "$rel/darkport" --version >&2

log "\$ chroot $rootfs $rel/darkport registry serve --root $rel/root --listen 127.0.0.1:0 --progress plain"
chroot "$rootfs" "$rel/darkport" registry serve --root "$rel/root" --listen 127.0.0.1:0 \
  --progress plain >"$run/serve.log" 2>&1 &
pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'https\?://127\.0\.0\.1:[0-9]*' "$run/serve.log" | head -n1 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  log "registry serve did not print its URL:"
  cat "$run/serve.log" >&2
  exit 1
fi
log "\$ curl -sS -i $url/v2/"
resp=$(curl -sS -i --max-time 10 "$url/v2/")
echo "$resp" | tr -d '\r' | sed 's/^/  /' >&2
echo "$resp" | head -n1 | grep -q ' 200' || { log "GET /v2/ did not answer 200"; cat "$run/serve.log" >&2; exit 1; }
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""
log "registry serve log:"
sed 's/^/  /' "$run/serve.log" >&2

log "negative check: the debug build (this machine's glibc $(ldd --version | head -n1 | grep -o '[0-9.]*$')) must not run there"
log "\$ chroot $rootfs $rel/darkport-debug --version"
if out=$(chroot "$rootfs" "$rel/darkport-debug" --version 2>&1); then
  log "the debug build ran in the $SUITE chroot: this check cannot tell a portable binary from one that is not"
  echo "$out" >&2
  exit 1
fi
echo "$out" | sed 's/^/  /' >&2
echo "$out" | grep -q "version \`GLIBC_.*' not found" || { log "the debug build failed, but not for its glibc"; exit 1; }
log "OK: $bin runs on $SUITE (glibc 2.31) and serves /v2/; the debug build fails there as expected ($(( $(date +%s) - t0 ))s)"

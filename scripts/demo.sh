#!/usr/bin/env bash
# `make demo`: the main job end to end on this machine. For now: make a signing key, build the
# example product's bundle (dockercoins 1.0.0, images built offline from bundle/images with a
# busybox base layer), verify it and inspect it. Grows into a full local install later.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-target/debug/darkport}
[ -x "$BIN" ] || cargo build
mkdir -p dist
step() { printf '\n== %s\n' "$*"; }

step "signing key (dist/darkport.key, no password: demo only)"
if [ -f dist/darkport.key ]; then echo "reusing dist/darkport.key"; else "$BIN" keygen --out dist/darkport --no-password; fi

step "base layer: Debian's static busybox as the userland"
./bundle/prepare-base.sh

step "build-bundle -f bundle/darkport.yaml"
"$BIN" build-bundle -f bundle/darkport.yaml -o dist/ --key dist/darkport.key

B=dist/dockercoins-1.0.0.darkport
step "verify $B"
"$BIN" verify --pubkey dist/darkport.pub "$B"

step "inspect $B"
"$BIN" inspect --pubkey dist/darkport.pub "$B"

if command -v minisign >/dev/null; then
  step "the same signature, checked with the standard minisign tool"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  tar -C "$tmp" -xf "$B" darkport.json darkport.json.minisig
  minisign -Vm "$tmp/darkport.json" -p dist/darkport.pub
fi
if command -v skopeo >/dev/null; then
  step "skopeo reads the bundle as an OCI archive"
  skopeo inspect --raw "oci-archive:$B:dockercoins/rng:1.0.0" | head -c 300; echo
fi
step "done: $B ($(du -h "$B" | cut -f1)), signed with dist/darkport.key, public key dist/darkport.pub"

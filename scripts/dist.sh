#!/usr/bin/env bash
# Builds the portable release binary: x86_64 Linux, glibc >= 2.17 (RHEL/CentOS 7+, Debian 9+,
# Ubuntu 18.04+), with cargo-zigbuild (zig links against glibc 2.17 symbol versions; OpenSSL is
# vendored and linked statically). Writes dist/darkport-<version>-x86_64-linux and its
# .sha256 (`sha256sum -c` format) and fails if the binary needs any GLIBC symbol version above
# 2.17. Installs cargo-zigbuild and ziglang from PyPI when they are missing. Idempotent.
# Prints the binary's path on stdout (progress goes to stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC_FLOOR=2.17
TRIPLE=x86_64-unknown-linux-gnu
# Tested with these; any installed version is used as it is.
ZIGBUILD_PKGS=(cargo-zigbuild==0.24.1 ziglang==0.17.1)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
log() { echo "dist: $*" >&2; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# cargo-zigbuild ships as a binary in the wheel's scripts directory; make sure it is on PATH.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
[ -n "$scripts_dir" ] && export PATH="$PATH:$scripts_dir"
[ -d "$HOME/.local/bin" ] && export PATH="$PATH:$HOME/.local/bin"
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! python3 -m ziglang version >/dev/null 2>&1; then
  log "installing ${ZIGBUILD_PKGS[*]} from PyPI"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet --disable-pip-version-check "${ZIGBUILD_PKGS[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${ZIGBUILD_PKGS[@]}"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  export PATH="$PATH:$scripts_dir"
  command -v cargo-zigbuild >/dev/null || { log "cargo-zigbuild not found after pip install"; exit 1; }
fi
command -v objdump >/dev/null 2>&1 || apt_install binutils
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TRIPLE"; then
  rustup target add "$TRIPLE"
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
name="darkport-$version-x86_64-linux"
log "cargo zigbuild --release --locked --target $TRIPLE.$GLIBC_FLOOR ($(cargo-zigbuild --version 2>/dev/null | head -n1), zig $(python3 -m ziglang version))"
start=$(date +%s)
cargo zigbuild --release --locked --target "$TRIPLE.$GLIBC_FLOOR" >&2
bin="$CARGO_TARGET_DIR/$TRIPLE/release/darkport"
log "built in $(( $(date +%s) - start ))s"

# Every versioned glibc symbol (dynamic symbols and version references) must be <= the floor.
max=$( { objdump -T "$bin"; objdump -p "$bin"; } | grep -o 'GLIBC_[0-9][0-9.]*' \
  | sed 's/^GLIBC_//' | sort -u -V | tail -n1)
if [ -z "$max" ]; then
  log "no GLIBC symbol versions found in $bin: not the dynamically linked binary expected"
  exit 1
fi
if [ "$(printf '%s\n%s\n' "$max" "$GLIBC_FLOOR" | sort -V | tail -n1)" != "$GLIBC_FLOOR" ]; then
  log "$bin needs GLIBC_$max (> $GLIBC_FLOOR):"
  objdump -T "$bin" | grep -E "GLIBC_$max([^0-9.]|$)" >&2 || true
  exit 1
fi
"$bin" --version >/dev/null

mkdir -p dist
cp "$bin" "dist/.$name.tmp"
mv -f "dist/.$name.tmp" "dist/$name"
(cd dist && sha256sum "$name" >".$name.sha256.tmp" && mv -f ".$name.sha256.tmp" "$name.sha256")
log "dist/$name: $(stat -c %s "dist/$name") bytes, highest glibc symbol version GLIBC_$max, $("dist/$name" --version)"
log "dist/$name.sha256: $(cut -d' ' -f1 "dist/$name.sha256")"
echo "dist/$name"

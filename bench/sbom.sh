#!/usr/bin/env bash
# SBOM scan throughput on a generated image of a few hundred MB made of this machine's real
# files and package database: layer 1 (gzip) = /usr/bin + /usr/lib/gcc + /usr/share/doc +
# /var/lib/dpkg, layer 2 (zstd) = /usr/libexec + part of /usr/lib. Side by side with the
# floor: decompressing the same layers (gzip -dc / zstd -dc to /dev/null) and `tar -t`.
# Usage: bench/sbom.sh [WORKDIR]   (kept in WORKDIR between runs; default /tmp/darkport-bench-sbom)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DARKPORT:-${CARGO_TARGET_DIR:-$ROOT/target}/release/darkport}
W=${1:-/tmp/darkport-bench-sbom}
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)"; exit 1; }

L=$W/layout
if [ ! -f "$L/index.json" ]; then
  rm -rf "$W"; mkdir -p "$L/blobs/sha256"
  echo "generating the image in $W ..."
  tar -C / -cf "$W/l1.tar" usr/bin usr/lib/gcc usr/share/doc var/lib/dpkg/status 2>/dev/null || true
  tar -C / -cf "$W/l2.tar" usr/libexec usr/lib/x86_64-linux-gnu/perl-base usr/lib/x86_64-linux-gnu/gconv 2>/dev/null || true
  gzip -1 -c "$W/l1.tar" > "$W/l1.tar.gz"
  zstd -q -3 -T2 -c "$W/l2.tar" > "$W/l2.tar.zst"
  put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$L/blobs/sha256/$d"; echo "$d"; }
  d1=$(put "$W/l1.tar.gz"); d2=$(put "$W/l2.tar.zst")
  u1=$(sha256sum "$W/l1.tar" | cut -d' ' -f1); u2=$(sha256sum "$W/l2.tar" | cut -d' ' -f1)
  s1=$(stat -c %s "$W/l1.tar.gz"); s2=$(stat -c %s "$W/l2.tar.zst")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' "$u1" "$u2" > "$W/config.json"
  cd_=$(put "$W/config.json"); cs=$(stat -c %s "$W/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:%s","size":%s}]}' \
    "$cd_" "$cs" "$d1" "$s1" "$d2" "$s2" > "$W/manifest.json"
  md=$(put "$W/manifest.json"); ms=$(stat -c %s "$W/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$md" "$ms" > "$L/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
  rm -f "$W/l1.tar" "$W/l2.tar"
fi

blobs=$(( $(stat -c %s "$W/l1.tar.gz") + $(stat -c %s "$W/l2.tar.zst") ))
raw=$(( $(gzip -dc "$W/l1.tar.gz" | wc -c) + $(zstd -dc "$W/l2.tar.zst" | wc -c) ))
sync; cat "$W"/l1.tar.gz "$W"/l2.tar.zst "$L"/blobs/sha256/* > /dev/null   # warm the page cache

t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
floor=$(t bash -c "gzip -dc '$W/l1.tar.gz' > /dev/null; zstd -q -dc '$W/l2.tar.zst' > /dev/null")
tart=$(t bash -c "tar -tzf '$W/l1.tar.gz' > /dev/null; tar --zstd -tf '$W/l2.tar.zst' > /dev/null")
ours=$(t "$BIN" --progress quiet sbom "$L" --image bench --format spdx)
pk=$("$BIN" --progress quiet sbom "$L" --format json | grep -c '"kind": "deb"')

mb() { echo "scale=1; $1 / 1000000" | bc; }
rate() { echo "scale=0; $1 / 1000000 / $2" | bc; }
echo "image: 2 layers, $(mb $blobs) MB compressed, $(mb $raw) MB uncompressed, $pk deb packages"
printf '%-44s %8s %12s %12s\n' "what" "seconds" "MB/s blob" "MB/s tar"
printf '%-44s %8.2f %12s %12s\n' "gzip -dc + zstd -dc > /dev/null (floor)" "$floor" "$(rate $blobs $floor)" "$(rate $raw $floor)"
printf '%-44s %8.2f %12s %12s\n' "tar -tzf + tar --zstd -tf" "$tart" "$(rate $blobs $tart)" "$(rate $raw $tart)"
printf '%-44s %8.2f %12s %12s\n' "darkport sbom --format spdx (verifies sha256)" "$ours" "$(rate $blobs $ours)" "$(rate $raw $ours)"
echo "ratio darkport/floor: $(echo "scale=2; $ours / $floor" | bc)  darkport/tar-t: $(echo "scale=2; $ours / $tart" | bc)"

#!/usr/bin/env bash
# bench/build.sh: darkport build-bundle vs its peers on a generated corpus, side by side in
# one run. Corpus: N images (default 7) sharing a base layer of 60 MiB uncompressed / ~47 MiB
# gzipped (40 MiB random + 20 MiB text-like, fixed seed) that also carries a real dpkg
# database (the first BENCH_DPKG_PACKAGES, default 120, entries of this machine's
# /var/lib/dpkg/status, with their usr/share/doc/<pkg>/copyright files and etc/os-release),
# so every image has an SBOM to scan; plus a 2-4 MiB app layer each; as an OCI layout with
# gzip layers (like registry images). Version 1.1.0 of the product changes app0's layer only.
#   darkport : build-bundle from the OCI layout (signed, deduplicated bundle, SBOMs scanned)
#   (a)      : skopeo copy to one docker-archive per image + gzip   (= docker save | gzip)
#   (b)      : skopeo copy into one shared OCI layout + tar | zstd -T0
# Also: the 1.1.0 delta (--since the 1.0.0 bundle) against the bytes of the blobs 1.1.0 adds,
# verify throughput vs sha256sum on the same file, and peak RSS (/usr/bin/time -v).
# Needs a release build (make bench does it), skopeo, zstd, python3, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-${CARGO_TARGET_DIR:-$PWD/target}/release/darkport}
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 1; }
for t in skopeo zstd python3 /usr/bin/time sha256sum gzip; do command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }; done
W=${BENCH_DIR:-$(mktemp -d /tmp/darkport-bench.XXXXXX)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
N=${BENCH_IMAGES:-7}
NPKG=${BENCH_DPKG_PACKAGES:-120}
[ -r /var/lib/dpkg/status ] || { echo "bench: /var/lib/dpkg/status missing (the corpus copies part of it)" >&2; exit 1; }
echo "bench: work dir $W, $N images, $NPKG dpkg packages in the base layer"

# ---- corpus -------------------------------------------------------------------------------
python3 - "$W/src" "$N" "$NPKG" <<'PY'
import os, random, sys
root, n, npkg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261122)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(3000)]
def text(size):
    out, total = [], 0
    while total < size:
        line = ' '.join(rng.choice(words) for _ in range(12)) + '\n'
        out.append(line); total += len(line)
    return ''.join(out).encode()[:size]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f: f.write(data)
for i in range(40):
    write(f'{root}/base/usr/lib/blob{i:02}.bin', rng.randbytes(1 << 20))       # incompressible
for i in range(20):
    write(f'{root}/base/usr/share/doc{i:02}.txt', text(1 << 20))               # compressible
# A real package database: the first npkg stanzas of this machine's dpkg status, their
# copyright files, and os-release.
stanzas = open('/var/lib/dpkg/status', encoding='utf-8', errors='replace').read().split('\n\n')
keep = [st for st in stanzas if st.startswith('Package: ')][:npkg]
write(f'{root}/base/var/lib/dpkg/status', ('\n\n'.join(keep) + '\n').encode())
for st in keep:
    name = st.split('\n', 1)[0][len('Package: '):].strip()
    c = f'/usr/share/doc/{name}/copyright'
    if os.path.isfile(c) and not os.path.islink(c):
        write(f'{root}/base/usr/share/doc/{name}/copyright', open(c, 'rb').read())
if os.path.isfile('/etc/os-release'):
    write(f'{root}/base/etc/os-release', open('/etc/os-release', 'rb').read())
for k in range(n):
    size = (2 + k % 3) << 20
    write(f'{root}/app{k}/app/bin/app{k}', rng.randbytes(size // 2))
    write(f'{root}/app{k}/app/share/readme.txt', text(size // 2))
# 1.1.0: app0 gets a new build, the other apps are unchanged.
write(f'{root}/app0-1.1/app/bin/app0', rng.randbytes(1 << 20))
write(f'{root}/app0-1.1/app/share/readme.txt', text(1 << 20))
PY
{
  echo "product: benchprod"; echo "version: 1.0.0"; echo "images:"
  for k in $(seq 0 $((N-1))); do
    for v in 1.0.0 1.1.0; do
      app=app$k; [ "$k/$v" = 0/1.1.0 ] && app=app0-1.1
      echo "  - name: bench/app$k:$v"; echo "    source: dir:src/base,src/$app"
      echo "    config: {Entrypoint: [/app/bin/app$k]}"
    done
  done
} > "$W/gen.yaml"
"$BIN" keygen --out "$W/k" --no-password >/dev/null
"$BIN" --progress quiet build-bundle -f "$W/gen.yaml" -o "$W/gen.darkport" --key "$W/k.key" --layer-compression gzip >/dev/null
mkdir -p "$W/layout" && tar -C "$W/layout" -xf "$W/gen.darkport" oci-layout index.json blobs
for v in 1.0.0 1.1.0; do
  {
    echo "product: benchprod"; echo "version: $v"; echo "images:"
    for k in $(seq 0 $((N-1))); do echo "  - name: bench/app$k:$v"; echo "    source: oci:layout:bench/app$k:$v"; done
  } > "$W/bench-$v.yaml"
done
sync
# Image blob bytes of a bundle (what the images need; its SBOM documents not included), and
# of those it stores (a delta leaves out what its base has).
blob_bytes() {
  tar -xOf "$1" darkport.json | python3 -c '
import json, sys
m = json.load(sys.stdin)
img = [b for b in m["blobs"] if not b["mediaType"].startswith("application/spdx")]
sb = [b for b in m["blobs"] if b["mediaType"].startswith("application/spdx")]
key = sys.argv[1]
if key == "unique": print(sum(b["size"] for b in img))
elif key == "stored": print(sum(b["size"] for b in img if b["present"]))
elif key == "sbom": print(sum(b["size"] for b in sb if b["present"]), len([b for b in sb if b["present"]]), len(sb))
' "$2"
}

now() { date +%s.%N; }
peak() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

# ---- darkport -------------------------------------------------------------------------------
cat "$W"/layout/blobs/sha256/* >/dev/null   # warm the page cache for everyone alike
t0=$(now)
/usr/bin/time -v -o "$W/time.build" "$BIN" --progress quiet build-bundle -f "$W/bench-1.0.0.yaml" -o "$W/out.darkport" --key "$W/k.key" >/dev/null
t_dp=$(echo "$(now) - $t0" | bc)
s_dp=$(stat -c %s "$W/out.darkport")
unique=$(blob_bytes "$W/out.darkport" unique)
read -r sbom_bytes sbom_n _ <<<"$(blob_bytes "$W/out.darkport" sbom)"
pkgs=$("$BIN" --progress quiet sbom --pubkey "$W/k.pub" --image bench/app0:1.0.0 --format json "$W/out.darkport" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["packages"]))')

# ---- delta 1.0.0 -> 1.1.0 --------------------------------------------------------------------
t0=$(now)
"$BIN" --progress quiet build-bundle -f "$W/bench-1.1.0.yaml" -o "$W/delta.darkport" --key "$W/k.key" --since "$W/out.darkport" >/dev/null
t_delta=$(echo "$(now) - $t0" | bc)
s_delta=$(stat -c %s "$W/delta.darkport")
new_blobs=$(blob_bytes "$W/delta.darkport" stored)
read -r dsbom_bytes dsbom_n dsbom_all <<<"$(blob_bytes "$W/delta.darkport" sbom)"
rss_build=$(peak "$W/time.build")
img=$("$BIN" inspect --json --pubkey "$W/k.pub" "$W/out.darkport" | python3 -c 'import json,sys; print(json.load(sys.stdin)["image_bytes"])')

# ---- (a) per-image docker-archive + gzip ------------------------------------------------------
mkdir -p "$W/a"
t0=$(now)
for k in $(seq 0 $((N-1))); do
  skopeo copy --quiet "oci:$W/layout:bench/app$k:1.0.0" "docker-archive:$W/a/app$k.tar:bench/app$k:1.0.0"
  gzip -f "$W/a/app$k.tar"
done
t_a=$(echo "$(now) - $t0" | bc)
s_a=$(du -cb "$W"/a/*.tar.gz | tail -1 | cut -f1)

# ---- (b) shared OCI layout + tar | zstd -T0 ----------------------------------------------------
mkdir -p "$W/b"
t0=$(now)
for k in $(seq 0 $((N-1))); do
  skopeo copy --quiet "oci:$W/layout:bench/app$k:1.0.0" "oci:$W/b/layout:bench/app$k:1.0.0"
done
tar -C "$W/b/layout" -cf - . | zstd -T0 -q -o "$W/b/bundle.tar.zst"
t_b=$(echo "$(now) - $t0" | bc)
s_b=$(stat -c %s "$W/b/bundle.tar.zst")

# ---- verify vs sha256sum (warm cache, both) ----------------------------------------------------
cat "$W/out.darkport" >/dev/null
t0=$(now); sha256sum "$W/out.darkport" >/dev/null; t_sha=$(echo "$(now) - $t0" | bc)
t0=$(now)
/usr/bin/time -v -o "$W/time.verify" "$BIN" --progress quiet verify --pubkey "$W/k.pub" "$W/out.darkport" >/dev/null
t_ver=$(echo "$(now) - $t0" | bc)
rss_verify=$(peak "$W/time.verify")

r() { python3 -c "print(f'{$1:.2f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.1f} MiB')"; }
echo
base=$(ls -S "$W"/layout/blobs/sha256/* | head -1 | xargs stat -c %s)
echo "corpus: $N images, shared base layer $(mib "$base") (gzip) with $pkgs dpkg packages, unique blob bytes $(mib "$unique"), sum of image sizes $(mib "$img")"
echo "SBOMs: $sbom_n documents, $sbom_bytes bytes stored (zstd) in the full bundle; the delta stores $dsbom_n of $dsbom_all ($dsbom_bytes bytes), the others are its base's"
printf '%-44s %12s %10s\n' "" "size" "time (s)"
printf '%-44s %12s %10.2f\n' "darkport build-bundle (signed bundle)" "$(mib "$s_dp")" "$t_dp"
printf '%-44s %12s %10.2f\n' "(a) skopeo -> docker-archive per image + gzip" "$(mib "$s_a")" "$t_a"
printf '%-44s %12s %10.2f\n' "(b) skopeo -> shared OCI layout + tar|zstd -T0" "$(mib "$s_b")" "$t_b"
echo
printf '%-44s %12s %10.2f\n' "darkport build-bundle --since 1.0.0 (delta)" "$(mib "$s_delta")" "$t_delta"
echo
echo "bundle size / unique blob bytes        : $(python3 -c "print(f'{$s_dp/$unique:.4f}')")   (target <= 1.005)"
echo "delta size / new blob bytes            : $(python3 -c "print(f'{$s_delta/$new_blobs:.4f}')") ($s_delta / $new_blobs bytes)   (target <= 1.05)"
echo "build time darkport / (b)              : $(python3 -c "print(f'{$t_dp/$t_b:.3f}')")   (target <= 1.0)"
echo "build time (a) / darkport (speed-up)   : $(r "$t_a/$t_dp")   (target >= 20)"
echo "size (a) / darkport                    : $(r "$s_a/$s_dp")"
echo "verify: darkport $(r "$t_ver") s, sha256sum $(r "$t_sha") s -> throughput ratio $(r "$t_sha/$t_ver")   (target >= 0.8)"
echo "peak RSS: build-bundle $((rss_build/1024)) MiB, verify $((rss_verify/1024)) MiB   (target < 100)"

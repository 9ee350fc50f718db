#!/usr/bin/env bash
# bench/build.sh: darkport build-bundle vs its peers on a generated corpus, side by side in
# one run. Corpus: 7 images sharing a base layer of 60 MiB uncompressed / ~47 MiB gzipped
# (40 MiB random + 20 MiB text-like, fixed seed) + a 2-4 MiB app layer each, as an OCI layout with gzip layers (like registry images).
#   darkport : build-bundle from the OCI layout (signed, deduplicated bundle)
#   (a)      : skopeo copy to one docker-archive per image + gzip   (= docker save | gzip)
#   (b)      : skopeo copy into one shared OCI layout + tar | zstd -T0
# Also: verify throughput vs sha256sum on the same file, and peak RSS (/usr/bin/time -v).
# Needs a release build (make bench does it), skopeo, zstd, python3, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-$PWD/target/release/darkport}
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 1; }
for t in skopeo zstd python3 /usr/bin/time sha256sum gzip; do command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }; done
W=${BENCH_DIR:-$(mktemp -d /tmp/darkport-bench.XXXXXX)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
N=${BENCH_IMAGES:-7}
echo "bench: work dir $W, $N images"

# ---- corpus -------------------------------------------------------------------------------
python3 - "$W/src" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
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
for k in range(n):
    size = (2 + k % 3) << 20
    write(f'{root}/app{k}/app/bin/app{k}', rng.randbytes(size // 2))
    write(f'{root}/app{k}/app/share/readme.txt', text(size // 2))
PY
{
  echo "product: benchprod"; echo "version: 1.0.0"; echo "images:"
  for k in $(seq 0 $((N-1))); do
    echo "  - name: bench/app$k:1.0.0"; echo "    source: dir:src/base,src/app$k"
    echo "    config: {Entrypoint: [/app/bin/app$k]}"
  done
} > "$W/gen.yaml"
"$BIN" keygen --out "$W/k" --no-password >/dev/null
"$BIN" --progress quiet build-bundle -f "$W/gen.yaml" -o "$W/gen.darkport" --key "$W/k.key" --layer-compression gzip >/dev/null
mkdir -p "$W/layout" && tar -C "$W/layout" -xf "$W/gen.darkport" oci-layout index.json blobs
unique=$(du -cb "$W"/layout/blobs/sha256/* | tail -1 | cut -f1)
{
  echo "product: benchprod"; echo "version: 1.0.0"; echo "images:"
  for k in $(seq 0 $((N-1))); do echo "  - name: bench/app$k:1.0.0"; echo "    source: oci:layout:bench/app$k:1.0.0"; done
} > "$W/bench.yaml"
sync

now() { date +%s.%N; }
peak() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

# ---- darkport -------------------------------------------------------------------------------
cat "$W"/layout/blobs/sha256/* >/dev/null   # warm the page cache for everyone alike
t0=$(now)
/usr/bin/time -v -o "$W/time.build" "$BIN" --progress quiet build-bundle -f "$W/bench.yaml" -o "$W/out.darkport" --key "$W/k.key" >/dev/null
t_dp=$(echo "$(now) - $t0" | bc)
s_dp=$(stat -c %s "$W/out.darkport")
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
echo "corpus: $N images, shared base layer $(mib "$base") (gzip), unique blob bytes $(mib "$unique"), sum of image sizes $(mib "$img")"
printf '%-44s %12s %10s\n' "" "size" "time (s)"
printf '%-44s %12s %10.2f\n' "darkport build-bundle (signed bundle)" "$(mib "$s_dp")" "$t_dp"
printf '%-44s %12s %10.2f\n' "(a) skopeo -> docker-archive per image + gzip" "$(mib "$s_a")" "$t_a"
printf '%-44s %12s %10.2f\n' "(b) skopeo -> shared OCI layout + tar|zstd -T0" "$(mib "$s_b")" "$t_b"
echo
echo "bundle size / unique blob bytes        : $(python3 -c "print(f'{$s_dp/$unique:.4f}')")   (target <= 1.01)"
echo "build time darkport / (b)              : $(r "$t_dp/$t_b")   (target <= 1.5)"
echo "build time (a) / darkport (speed-up)   : $(r "$t_a/$t_dp")   (target >= 20)"
echo "size (a) / darkport                    : $(r "$s_a/$s_dp")"
echo "verify: darkport $(r "$t_ver") s, sha256sum $(r "$t_sha") s -> throughput ratio $(r "$t_sha/$t_ver")   (target >= 0.8)"
echo "peak RSS: build-bundle $((rss_build/1024)) MiB, verify $((rss_verify/1024)) MiB   (target < 100)"

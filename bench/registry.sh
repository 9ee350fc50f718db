#!/usr/bin/env bash
# Pull throughput: `darkport registry serve` vs Debian's `docker-registry` (CNCF distribution)
# serving the same images (same blobs, same manifest digests), pulled with `skopeo copy` to a
# local dir: layout, side by side in one run. Loopback only; content generated here.
#
#   bench/registry.sh            (after `cargo build --release`; `make bench` does both)
#   IMAGES=4 LAYER_MB="48 32 16" ROUNDS=3 bench/registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-${CARGO_TARGET_DIR:-target}/release/darkport}
IMAGES=${IMAGES:-4}
LAYER_MB=${LAYER_MB:-"64 32 16"}
ROUNDS=${ROUNDS:-3}
for t in skopeo docker-registry python3; do
  command -v "$t" >/dev/null || { echo "bench/registry.sh: $t is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench/registry.sh: build first: cargo build --release ($BIN)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/darkport-bench-registry.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

. bench/lib/registry.sh

echo "== generating $IMAGES images, layers of ($LAYER_MB) MiB of random data each (gzip -1)"
# An OCI image layout whose blobs/sha256 is also darkport's CAS, plus registry/repositories.json.
python3 bench/lib/gen_layout.py "$WORK/layout" "$IMAGES" "$LAYER_MB"
TOTAL=$(du -sb "$WORK/layout/blobs" | cut -f1)
echo "   $(( TOTAL / 1048576 )) MiB of blobs"

# darkport registry serve, straight from the CAS.
DP_PORT=$(free_port)
"$BIN" --progress plain registry serve --root "$WORK/layout" --listen "127.0.0.1:$DP_PORT" \
  >"$WORK/darkport.out" 2>"$WORK/darkport.log" &
PIDS+=($!)

# docker-registry (distribution 2.8, filesystem driver), filled by skopeo.
start_docker_registry "$WORK"
PIDS+=("$DR_PID")

for port in "$DP_PORT" "$DR_PORT"; do wait_v2 "$port"; done

echo "== filling docker-registry with skopeo copy (oci layout -> registry)"
fill_start=$(date +%s.%N)
for i in $(seq 0 $((IMAGES - 1))); do
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/layout:img$i" \
    "docker://127.0.0.1:$DR_PORT/bench/img$i:1"
done
fill_end=$(date +%s.%N)
for i in $(seq 0 $((IMAGES - 1))); do
  a=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://127.0.0.1:$DP_PORT/bench/img$i:1")
  b=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://127.0.0.1:$DR_PORT/bench/img$i:1")
  [ "$a" = "$b" ] || { echo "digest mismatch for img$i: $a vs $b" >&2; exit 1; }
done
echo "   same manifest digests on both registries; fill took $(python3 -c "print(f'{$fill_end-$fill_start:.2f}')")s"

# Pull every image (sequentially) with skopeo into a fresh dir: layout; prints seconds.
pull_all() {
  local port=$1 out="$WORK/pull"
  rm -rf "$out"; mkdir -p "$out"
  local s e
  s=$(date +%s.%N)
  for i in $(seq 0 $((IMAGES - 1))); do
    skopeo --insecure-policy copy -q --src-tls-verify=false \
      "docker://127.0.0.1:$port/bench/img$i:1" "dir:$out/img$i"
  done
  e=$(date +%s.%N)
  python3 -c "print(f'{$e-$s:.3f}')"
}

echo "== pulling all images with skopeo copy, $ROUNDS rounds, alternating"
dp_first=$(pull_all "$DP_PORT")   # first pull after start: darkport verifies every sha256
dr_first=$(pull_all "$DR_PORT")
dp=(); dr=()
for r in $(seq "$ROUNDS"); do
  dp+=("$(pull_all "$DP_PORT")")
  dr+=("$(pull_all "$DR_PORT")")
done

# The servers alone, without skopeo's own cost: GET every blob with curl into /dev/null,
# 4 at a time (blob list from the manifests).
python3 - "$WORK/layout" >"$WORK/blobs.txt" <<'EOF'
import json, sys
root = sys.argv[1]
idx = json.load(open(f"{root}/index.json"))
for i, m in enumerate(idx["manifests"]):
    man = json.load(open(f"{root}/blobs/sha256/{m['digest'][7:]}"))
    for d in [man["config"]] + man["layers"]:
        print(f"bench/img{i} {d['digest']}")
EOF
curl_all() {
  local port=$1 s e
  s=$(date +%s.%N)
  xargs -P4 -L1 sh -c 'curl -fsS -o /dev/null "http://127.0.0.1:'"$port"'/v2/$0/blobs/$1"' <"$WORK/blobs.txt"
  e=$(date +%s.%N)
  python3 -c "print(f'{$e-$s:.3f}')"
}
cdp=(); cdr=()
for r in $(seq "$ROUNDS"); do
  cdp+=("$(curl_all "$DP_PORT")")
  cdr+=("$(curl_all "$DR_PORT")")
done

python3 - "$TOTAL" "$dp_first" "$dr_first" "${dp[*]}" "${dr[*]}" "${cdp[*]}" "${cdr[*]}" <<'EOF'
import statistics, sys
total = int(sys.argv[1]); mib = total / 1048576
dpf, drf = float(sys.argv[2]), float(sys.argv[3])
dp = [float(x) for x in sys.argv[4].split()]; dr = [float(x) for x in sys.argv[5].split()]
def row(name, a, b):
    ra, rb = mib / a, mib / b
    print(f"{name:<40} {a:7.2f}s {ra:7.0f} MiB/s   {b:7.2f}s {rb:7.0f} MiB/s   {ra/rb:5.2f}x")
print(f"{'pull all images (' + f'{mib:.0f} MiB)':<40} {'darkport serve':>22}   {'docker-registry':>22}   ratio (darkport/docker-registry)")
row("first pull after start", dpf, drf)
row("median of warm rounds", statistics.median(dp), statistics.median(dr))
row("best warm round", min(dp), min(dr))
cdp = [float(x) for x in sys.argv[6].split()]; cdr = [float(x) for x in sys.argv[7].split()]
row("curl GET every blob, 4 parallel (median)", statistics.median(cdp), statistics.median(cdr))
EOF

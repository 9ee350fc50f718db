#!/usr/bin/env bash
# Pull load on the site registry: CLIENTS pullers (default 250, one per site host) start at
# the same instant and each pulls every image of the product (manifest, config, layers; one
# curl per client, requests in sequence on one keep-alive connection, as a runtime pulling
# one layer at a time would), against, side by side in one run:
#   darkport registry serve  x1       every client on the one registry
#   docker-registry (Debian)  x1       the same images (same digests), filled with skopeo
#   darkport registry serve  x2, x3   the HA mode: client k pulls from registry k mod R, the
#                                      rule `darkport install` gives the nodes of a site
#                                      with R registry hosts (Site::registry_order)
# Per run: wall time until the last client finished, aggregate throughput, per-client time
# (p50/p95/max), per-request time (p50/p99/max), errors (a non-200 or a failed transfer),
# and each registry process's CPU seconds (how the work spread). Plain HTTP on loopback for
# both servers (TLS costs both the same; bench/install.sh measures pulls over TLS). All the
# registries share this machine's cores: R registries here spread the work, they cannot add
# CPU; on a real site each registry host brings its own.
#
#   bench/pull-load.sh
#   CLIENTS=100 IMAGES=3 LAYER_MB="8 4" bench/pull-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DARKPORT:-${CARGO_TARGET_DIR:-target}/release/darkport}
CLIENTS=${CLIENTS:-250}
IMAGES=${IMAGES:-2}
LAYER_MB=${LAYER_MB:-"8 4"}
for t in skopeo docker-registry python3 curl; do
  command -v "$t" >/dev/null || { echo "bench/pull-load.sh: $t is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench/pull-load.sh: build first: cargo build --release ($BIN)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/darkport-bench-pull.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib/registry.sh
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }

echo "== $CLIENTS clients; $IMAGES images, layers of ($LAYER_MB) MiB each (random, gzip -1)"
python3 bench/lib/gen_layout.py "$WORK/layout" "$IMAGES" "$LAYER_MB"
PER_CLIENT=$(du -cb "$WORK"/layout/blobs/sha256/* | tail -1 | cut -f1)

# Three darkport registries serving the same root, one docker-registry filled with skopeo.
DP_PORTS=(); DP_PIDS=()
for _ in 1 2 3; do
  port=$(free_port)
  "$BIN" --progress quiet registry serve --root "$WORK/layout" --listen "127.0.0.1:$port" \
    >/dev/null 2>"$WORK/dp-$port.log" &
  PIDS+=($!); DP_PIDS+=($!); DP_PORTS+=("$port")
done
start_docker_registry "$WORK"
PIDS+=("$DR_PID")
for p in "${DP_PORTS[@]}" "$DR_PORT"; do wait_v2 "$p"; done
for i in $(seq 0 $((IMAGES - 1))); do
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/layout:img$i" \
    "docker://127.0.0.1:$DR_PORT/bench/img$i:1"
done

# What one client fetches: per image the manifest by tag, then the config and every layer.
python3 - "$WORK/layout" >"$WORK/paths.txt" <<'EOF'
import json, sys
root = sys.argv[1]
for i, m in enumerate(json.load(open(f"{root}/index.json"))["manifests"]):
    print(f"bench/img{i}/manifests/1")
    man = json.load(open(f"{root}/blobs/sha256/{m['digest'][7:]}"))
    for d in [man["config"]] + man["layers"]:
        print(f"bench/img{i}/blobs/{d['digest']}")
EOF
for p in "${DP_PORTS[@]}" "$DR_PORT"; do
  while read -r path; do printf 'url = "http://127.0.0.1:%s/v2/%s"\noutput = "/dev/null"\n' "$p" "$path"; done \
    <"$WORK/paths.txt" >"$WORK/curl-$p.cfg"
done
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

# run NAME PORT...: CLIENTS pullers, client k on PORT[k mod count], released together.
run() {
  local name=$1; shift
  local ports=("$@") out="$WORK/out-$name" pids=() cpu0=() k
  mkdir -p "$out"; rm -f "$WORK/go"; mkfifo "$WORK/go"
  exec 3<>"$WORK/go" # held open: each client blocks in read until its line arrives
  for pid in "${SERVERS[@]}"; do cpu0+=("$(cpu_of "$pid")"); done
  for k in $(seq 0 $((CLIENTS - 1))); do
    local p=${ports[$((k % ${#ports[@]}))]}
    (
      read -r _ <"$WORK/go" || true
      s=$EPOCHREALTIME
      curl -sS -H "$ACCEPT" -w '%{http_code} %{time_total} %{size_download}\n' -K "$WORK/curl-$p.cfg" \
        >"$out/$k.req" 2>"$out/$k.err" || echo "curl exit $?" >>"$out/$k.err"
      echo "$s $EPOCHREALTIME" >"$out/$k.time"
    ) &
    pids+=($!)
  done
  sleep 1 # the clients are (nearly all) waiting on the fifo
  local t0=$EPOCHREALTIME
  printf '\n%.0s' $(seq "$CLIENTS") >&3 # one line per client releases them together
  wait "${pids[@]}" || true
  exec 3>&-
  local t1=$EPOCHREALTIME cpu=() i=0
  for pid in "${SERVERS[@]}"; do cpu+=("$(awk -v a="${cpu0[$i]}" -v b="$(cpu_of "$pid")" 'BEGIN { printf "%.2f", b - a }')"); i=$((i + 1)); done
  python3 - "$name" "$out" "$CLIENTS" "$PER_CLIENT" "$t0" "$t1" "${#ports[@]}" "${cpu[*]}" <<'EOF'
import glob, os, statistics, sys
name, out, n, per, t0, t1, regs, cpu = sys.argv[1:]
n, per, t0, t1, regs = int(n), int(per), float(t0), float(t1), int(regs)
req, errs, clients = [], 0, []
for k in range(n):
    for line in open(f"{out}/{k}.req"):
        code, secs, size = line.split()
        req.append(float(secs))
        if code != "200": errs += 1
    if os.path.getsize(f"{out}/{k}.err"): errs += 1
    s, e = open(f"{out}/{k}.time").read().split()
    clients.append(float(e) - t0)
def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(p / 100 * len(v)))]
wall = t1 - t0
mib = n * per / 1048576
print(f"{name:<22} {regs:>4} {wall:8.2f}s {mib / wall:9.0f} {pct(clients, 50):8.2f}s {pct(clients, 95):8.2f}s {max(clients):8.2f}s"
      f" {pct(req, 50) * 1000:8.1f}ms {pct(req, 99) * 1000:8.1f}ms {max(req) * 1000:8.0f}ms {errs:6} {len(req):6}  cpu {cpu}")
EOF
}

echo "== each client pulls $((PER_CLIENT / 1048576)) MiB ($(wc -l <"$WORK/paths.txt") requests); $((CLIENTS * PER_CLIENT / 1048576)) MiB in all per run"
echo "   machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $("$BIN" --version); $(dpkg-query -W -f '${Package} ${Version}' docker-registry 2>/dev/null)"
printf "%-22s %4s %9s %9s %9s %9s %9s %10s %10s %10s %6s %6s  %s\n" server regs wall MiB/s "client50" "client95" "clientmax" "req50" "req99" "reqmax" errors reqs "server cpu s (darkport 1 2 3, docker-registry)"
SERVERS=("${DP_PIDS[@]}" "$DR_PID")
run darkport-x1 "${DP_PORTS[0]}"
run docker-registry-x1 "$DR_PORT"
run darkport-x2 "${DP_PORTS[0]}" "${DP_PORTS[1]}"
run darkport-x3 "${DP_PORTS[@]}"

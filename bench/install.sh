#!/usr/bin/env bash
# Seeding and pulling, side by side in one run, on one real sshd node (loopback):
#   (a) scp of the bundle's bytes to the node                       (the floor)
#   (b) darkport install: push the blobs the node lacks + registry up + install.yml
#   (c) skopeo copy of the same images (oci-archive = the bundle) into Debian's docker-registry
#   pull of every image with skopeo to a dir: from darkport registry serve vs docker-registry
#   (the same content, served over TLS with a certificate from the same site CA, and plain).
# Content: the example product plus one image with a BIG_MB MiB incompressible layer.
# Each comparison runs ROUNDS rounds (default 3), the two sides in turn, and compares medians:
# this shared 2-core machine moves single timings by tens of percent from minute to minute.
#
#   bench/install.sh                 (uses target/release/darkport if built, else target/debug)
#   BIG_MB=512 ROUNDS=5 bench/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIG_MB=${BIG_MB:-256}
BIN=${DARKPORT:-}
if [ -z "$BIN" ]; then
  if [ -x target/release/darkport ]; then BIN=target/release/darkport; else BIN=target/debug/darkport; fi
fi
for t in skopeo docker-registry python3 scp; do
  command -v "$t" >/dev/null || { echo "bench/install.sh: $t is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench/install.sh: build first (cargo build)" >&2; exit 1; }
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /var/tmp/darkport-bench-install.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  cargo run -q --example nodes -- down "$WORK/nodes" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
. bench/lib/registry.sh

echo "== binary: $BIN"
echo "== content: example product + one image with a $BIG_MB MiB random layer (zstd layers)"
cp -a bundle playbooks "$WORK/"
./bundle/prepare-base.sh >/dev/null 2>&1
rm -rf "$WORK/bundle/build"; cp -a bundle/build "$WORK/bundle/build"
mkdir -p "$WORK/bundle/images/big"
head -c $((BIG_MB << 20)) /dev/urandom > "$WORK/bundle/images/big/blob.bin"
python3 - "$WORK/bundle/darkport.yaml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("layer_compression: gzip", "layer_compression: zstd")
s = s.replace("playbooks: ../playbooks", "  - name: dockercoins/big:1.0.0\n    source: dir:build/base,images/big\n    config:\n      Entrypoint: [\"/bin/true\"]\nplaybooks: ../playbooks")
open(p, "w").write(s)
PY
"$BIN" keygen --no-password --out "$WORK/k" >/dev/null
"$BIN" build-bundle -f "$WORK/bundle/darkport.yaml" -o "$WORK/dist/" --key "$WORK/k.key" >/dev/null
B="$WORK/dist/dockercoins-1.0.0.darkport"
BYTES=$(stat -c %s "$B")
IMAGES=$("$BIN" inspect --json --pubkey "$WORK/k.pub" "$B" | python3 -c 'import json,sys; print(" ".join(i["name"] for i in json.load(sys.stdin)["images"]))')

echo "== one sshd node"
INV=$(cargo run -q --example nodes -- up 1 "$WORK/nodes")
IP=$(sed -n 's/^node1 .*ansible_host=\([^ ]*\).*/\1/p' "$INV")
PORT=$(sed -n 's/^node1 .*ansible_port=\([^ ]*\).*/\1/p' "$INV")
{ cat "$INV"; printf '\n[all:vars]\ndarkport_trust_root=/srv/trust\ndockercoins_run=false\n# these nodes run no container: the age of the host Docker (zstd needs 23.0) does not matter\ndarkport_runtime=none\n'; } > "$WORK/inv.ini"
SSHO=(-F /dev/null -o BatchMode=yes -o "UserKnownHostsFile=$WORK/nodes/known_hosts" -i "$WORK/nodes/id_ed25519")

# (a) and (b) alternate for ROUNDS rounds on the same node (wiped between installs: registry
# stopped, darkport_root emptied), so a busy moment of this shared machine hits both sides;
# the medians are compared.
ROUNDS=${ROUNDS:-3}
SCPS=(); DPS=(); SEEDS=()
for r in $(seq "$ROUNDS"); do
  echo "== round $r/$ROUNDS: (a) scp the bundle ($((BYTES >> 20)) MiB) to the node, (b) darkport install"
  t0=$(now); scp -q "${SSHO[@]}" -P "$PORT" "$B" "root@$IP:/var/lib/darkport/scp.bin"; t1=$(now)
  ssh "${SSHO[@]}" -p "$PORT" "root@$IP" rm -f /var/lib/darkport/scp.bin
  SCPS+=("$(echo "$t1 - $t0" | bc -l)")
  if [ "$r" -gt 1 ]; then
    ssh "${SSHO[@]}" -p "$PORT" "root@$IP" 'pid=$(cat /var/lib/darkport/registry/supervise.pid 2>/dev/null); [ -n "$pid" ] && kill -TERM -- -"$pid" 2>/dev/null; sleep 0.3; rm -rf /var/lib/darkport/* /srv/trust/*'
  fi
  t0=$(now)
  "$BIN" --progress quiet install -i "$WORK/inv.ini" --known-hosts "$WORK/nodes/known_hosts" \
    --pubkey "$WORK/k.pub" --ca-dir "$WORK/ca" "$B" --json > "$WORK/install.json" 2>"$WORK/install.err" \
    || { cat "$WORK/install.err"; exit 1; }
  t1=$(now)
  DPS+=("$(echo "$t1 - $t0" | bc -l)")
  SEEDS+=("$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["phases"]; print(p["push"]+p["seed"])' "$WORK/install.json")")
  echo "   scp ${SCPS[-1]} s, install ${DPS[-1]} s, of which seeding ${SEEDS[-1]} s: seeding/scp $(echo "${SEEDS[-1]} / ${SCPS[-1]}" | bc -l | cut -c1-4)"
done
SCP=$(printf '%s\n' "${SCPS[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
DP=$(printf '%s\n' "${DPS[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
SEED=$(printf '%s\n' "${SEEDS[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

echo "== (c) skopeo copy of every image into docker-registry"
start_docker_registry "$WORK"
PIDS+=("$DR_PID")
wait_v2 "$DR_PORT"
t0=$(now)
for i in $IMAGES; do
  skopeo copy -q --dest-tls-verify=false "oci-archive:$B:$i" "docker://127.0.0.1:$DR_PORT/$i"
done
t1=$(now)
SK=$(echo "$t1 - $t0" | bc -l)

echo "== pull every image with skopeo: darkport registry serve vs docker-registry"
mkdir -p "$WORK/certs"; cp "$WORK/ca/ca.crt" "$WORK/certs/"
pull() { # $1 = registry, rest = skopeo flags
  local reg=$1; shift; local t0 t1
  rm -rf "$WORK/pull"; mkdir -p "$WORK/pull"; t0=$(now)
  for i in $IMAGES; do
    skopeo copy -q "$@" "docker://$reg/$i" "dir:$WORK/pull/${i//[:\/]/_}" >&2 || return 1
  done
  t1=$(now); echo "$t1 - $t0" | bc -l
}
# The same docker-registry content served over TLS too (certificate from the same site CA), so
# both registries pay for TLS.
"$BIN" registry cert --ca "$WORK/ca" --host 127.0.0.1 --out "$WORK/drcert" >/dev/null
DRT_PORT=$(free_port)
cat >"$WORK/dreg-tls.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/dreg}, delete: {enabled: false}}
http: {addr: 127.0.0.1:$DRT_PORT, tls: {certificate: $WORK/drcert/server.crt, key: $WORK/drcert/server.key}}
YML
docker-registry serve "$WORK/dreg-tls.yml" >"$WORK/dreg-tls.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fsS --cacert "$WORK/ca/ca.crt" "https://127.0.0.1:$DRT_PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
# darkport's first pull after its start is the one that hashes what it serves for the first
# time (its integrity check, see src/registry/blobs.rs): timed on its own, then ROUNDS rounds
# of the three servers in turn, compared by their medians.
PFIRST=$(pull "$IP:5000" --src-cert-dir "$WORK/certs") || { echo "pull from darkport failed" >&2; exit 1; }
P_DP=(); P_DRT=(); P_DR=()
for r in $(seq "$ROUNDS"); do
  P_DP+=("$(pull "$IP:5000" --src-cert-dir "$WORK/certs")") || { echo "pull from darkport failed" >&2; exit 1; }
  P_DRT+=("$(pull "127.0.0.1:$DRT_PORT" --src-cert-dir "$WORK/certs")") || { echo "pull from docker-registry (TLS) failed" >&2; exit 1; }
  P_DR+=("$(pull "127.0.0.1:$DR_PORT" --src-tls-verify=false)") || { echo "pull from docker-registry failed" >&2; exit 1; }
  echo "   pull round $r: darkport ${P_DP[-1]} s, docker-registry TLS ${P_DRT[-1]} s, plain ${P_DR[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
PDP=$(median "${P_DP[@]}"); PDRT=$(median "${P_DRT[@]}"); PDR=$(median "${P_DR[@]}")
BINSIZE=$(stat -c %s "$BIN")

python3 - "$SCP" "$DP" "$SK" "$PDP" "$PDR" "$BYTES" "$WORK/install.json" "$BINSIZE" "$PDRT" "$PFIRST" "$SEED" "$ROUNDS" <<'PY'
import json, sys
scp, dp, sk, pdp, pdr = map(float, sys.argv[1:6]); b = int(sys.argv[6])
pdrt, pfirst, seed = map(float, sys.argv[9:12]); rounds = sys.argv[12]
j = json.load(open(sys.argv[7])); push = j["nodes"][0]["push"]
mib = b / 2**20
print()
binmib = int(sys.argv[8]) / 2**20
print(f"bundle {mib:.0f} MiB; darkport sent {push['blobs_sent']} blobs, {push['bytes_sent']/2**20:.0f} MiB, plus its own binary ({binmib:.0f} MiB) to run the registry")
print(f"{'seeding one registry node (median of ' + rounds + ')':<44} {'seconds':>8} {'MiB/s':>8}")
print(f"{'(a) scp of the bundle bytes (floor)':<44} {scp:8.2f} {mib/scp:8.1f}")
print(f"{'(b) darkport install (push+seed+playbook)':<44} {dp:8.2f} {mib/dp:8.1f}")
print(f"{'(c) skopeo copy oci-archive -> docker-registry':<44} {sk:8.2f} {mib/sk:8.1f}")
ph = j.get("phases", {})
print(f"{'    of which seeding (push + registry ready)':<44} {seed:8.2f} {mib/seed:8.1f}   phases of the last round: " + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()))
print(f"ratio darkport/scp = {dp/scp:.2f} whole install, {seed/scp:.2f} seeding (target <= 1.2); darkport/skopeo+docker-registry = {dp/sk:.2f}")
print(f"{'pull all images with skopeo (median of ' + rounds + ')':<44} {'seconds':>8} {'MiB/s':>8}")
print(f"{'darkport registry serve (TLS, site CA)':<44} {pdp:8.2f} {mib/pdp:8.1f}   first pull after its start {pfirst:.2f} s")
print(f"{'docker-registry (TLS, same site CA)':<44} {pdrt:8.2f} {mib/pdrt:8.1f}")
print(f"{'docker-registry (plain HTTP)':<44} {pdr:8.2f} {mib/pdr:8.1f}")
print(f"pull throughput ratio darkport/docker-registry: vs TLS {pdrt/pdp:.2f}, vs plain HTTP {pdr/pdp:.2f} (target >= 1.0); first pull after start vs TLS median {pdrt/pfirst:.2f}")
PY

#!/usr/bin/env bash
# Upgrading 1.0.0 -> 1.1.0 vs re-shipping the full bundle, side by side in one run, on three
# real sshd nodes (loopback; node1 is the registry host):
#   (a) darkport upgrade with a `--since 1.0.0` delta bundle   (what the operator carries: small)
#   (b) darkport upgrade with the full 1.1.0 bundle (a second site at 1.0.0)
#   (c) scp of the full 1.1.0 bundle to the registry node       (re-shipping everything)
# Bytes sent are read from darkport's --json push report and compared with the bytes of the
# blobs 1.1.0 adds (the delta bundle's stored blobs): target sent = new blobs' bytes +-1%.
# Content: the example product plus an image with a BIG_MB MiB random layer in 1.0.0 to which
# 1.1.0 adds a PATCH_MB MiB layer (zstd layers).
#
#   bench/upgrade.sh                    (uses target/release/darkport if built, else target/debug)
#   BIG_MB=512 PATCH_MB=16 bench/upgrade.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIG_MB=${BIG_MB:-256}
PATCH_MB=${PATCH_MB:-8}
BIN=${DARKPORT:-}
if [ -z "$BIN" ]; then
  if [ -x target/release/darkport ]; then BIN=target/release/darkport; else BIN=target/debug/darkport; fi
fi
for t in python3 scp bc; do
  command -v "$t" >/dev/null || { echo "bench/upgrade.sh: $t is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench/upgrade.sh: build first (cargo build)" >&2; exit 1; }
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /var/tmp/darkport-bench-upgrade.XXXXXX)
cleanup() {
  for s in a b; do cargo run -q --example nodes -- down "$WORK/nodes-$s" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }

echo "== binary: $BIN"
echo "== content: example product + an image with a $BIG_MB MiB layer; 1.1.0 adds a $PATCH_MB MiB layer to it"
cp -a bundle playbooks "$WORK/"
./bundle/prepare-base.sh >/dev/null 2>&1
rm -rf "$WORK/bundle/build"; cp -a bundle/build "$WORK/bundle/build"
mkdir -p "$WORK/bundle/images/big" "$WORK/bundle/images/big-patch"
head -c $((BIG_MB << 20)) /dev/urandom > "$WORK/bundle/images/big/blob.bin"
head -c $((PATCH_MB << 20)) /dev/urandom > "$WORK/bundle/images/big-patch/patch.bin"
python3 - "$WORK/bundle" <<'PY'
import sys
d = sys.argv[1]
for spec, v, extra in (("darkport.yaml", "1.0.0", ""), ("darkport-1.1.yaml", "1.1.0", ",images/big-patch")):
    p = f"{d}/{spec}"; s = open(p).read()
    s = s.replace("layer_compression: gzip", "layer_compression: zstd")
    s = s.replace("playbooks: ../playbooks", f"  - name: dockercoins/big:{v}\n    source: dir:build/base,images/big{extra}\n    config:\n      Entrypoint: [\"/bin/true\"]\nplaybooks: ../playbooks")
    open(p, "w").write(s)
PY
"$BIN" keygen --no-password --out "$WORK/k" >/dev/null
build() { "$BIN" --progress quiet build-bundle -f "$WORK/bundle/$1" -o "$WORK/$2/" --key "$WORK/k.key" "${@:3}" >/dev/null; }
build darkport.yaml dist-1.0
B10="$WORK/dist-1.0/dockercoins-1.0.0.darkport"
build darkport-1.1.yaml dist-1.1
B11="$WORK/dist-1.1/dockercoins-1.1.0.darkport"
build darkport-1.1.yaml dist-delta --since "$B10"
D11="$WORK/dist-delta/dockercoins-1.1.0-from-1.0.0.darkport"
NEW_BYTES=$("$BIN" inspect --json --pubkey "$WORK/k.pub" "$D11" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_blob_bytes"])')

# Two sites of three nodes at 1.0.0.
site() { # $1 = a|b
  local inv
  inv=$(cargo run -q --example nodes -- up 3 "$WORK/nodes-$1")
  { cat "$inv"; printf '\n[all:vars]\ndarkport_trust_root=/srv/trust\ndockercoins_run=false\n# these nodes run no container: the age of the host Docker (zstd needs 23.0) does not matter\ndarkport_runtime=none\n'; } > "$WORK/inv-$1.ini"
  dp "$1" install "$B10" >/dev/null
}
dp() { # $1 = site, $2 = command, $3 = bundle
  "$BIN" --progress quiet "$2" -i "$WORK/inv-$1.ini" --known-hosts "$WORK/nodes-$1/known_hosts" \
    --pubkey "$WORK/k.pub" --ca-dir "$WORK/ca-$1" --json "$3" 2>"$WORK/$1-$2.err" \
    || { cat "$WORK/$1-$2.err" >&2; exit 1; }
}
echo "== two sites of 3 sshd nodes, 1.0.0 installed"
site a
site b

echo "== (a) upgrade site a with the delta bundle"
t0=$(now); dp a upgrade "$D11" > "$WORK/a.json"; t1=$(now); TA=$(echo "$t1 - $t0" | bc -l)
echo "== (b) upgrade site b with the full bundle"
t0=$(now); dp b upgrade "$B11" > "$WORK/b.json"; t1=$(now); TB=$(echo "$t1 - $t0" | bc -l)
echo "== (c) scp of the full 1.1.0 bundle to one node"
INV=$WORK/inv-a.ini
IP=$(sed -n 's/^node1 .*ansible_host=\([^ ]*\).*/\1/p' "$INV")
PORT=$(sed -n 's/^node1 .*ansible_port=\([^ ]*\).*/\1/p' "$INV")
SSHO=(-F /dev/null -o BatchMode=yes -o "UserKnownHostsFile=$WORK/nodes-a/known_hosts" -i "$WORK/nodes-a/id_ed25519")
t0=$(now); scp -q "${SSHO[@]}" -P "$PORT" "$B11" "root@$IP:/var/lib/darkport/scp.bin"; t1=$(now)
TC=$(echo "$t1 - $t0" | bc -l)
ssh "${SSHO[@]}" -p "$PORT" "root@$IP" rm -f /var/lib/darkport/scp.bin

python3 - "$TA" "$TB" "$TC" "$NEW_BYTES" "$WORK/a.json" "$WORK/b.json" "$B11" "$D11" <<'PY'
import json, os, sys
ta, tb, tc = map(float, sys.argv[1:4]); new = int(sys.argv[4])
a = json.load(open(sys.argv[5])); b = json.load(open(sys.argv[6]))
full, delta = os.path.getsize(sys.argv[7]), os.path.getsize(sys.argv[8])
M = 2**20
def sent(j): return sum((n.get("push") or {}).get("bytes_sent", 0) for n in j["nodes"])
def blobs(j): return sum((n.get("push") or {}).get("blobs_sent", 0) for n in j["nodes"])
sa, sb = sent(a), sent(b)
print()
print(f"1.1.0 full bundle {full/M:.1f} MiB, delta bundle {delta/M:.1f} MiB, blobs new in 1.1.0 {new/M:.2f} MiB")
print(f"{'1.0.0 -> 1.1.0 on 3 nodes':<42} {'seconds':>8} {'blob MiB sent':>14} {'sent/new':>9}")
print(f"{'(a) darkport upgrade, delta bundle':<42} {ta:8.2f} {sa/M:14.2f} {sa/new:9.4f}  ({blobs(a)} blobs)")
print(f"{'(b) darkport upgrade, full bundle':<42} {tb:8.2f} {sb/M:14.2f} {sb/new:9.4f}  ({blobs(b)} blobs)")
print(f"{'(c) scp of the full bundle to one node':<42} {tc:8.2f} {full/M:14.2f} {full/new:9.4f}")
print(f"bytes sent / new blobs' bytes: delta {sa/new:.4f}, full {sb/new:.4f} (target 1.00 +-0.01)")
print(f"time: upgrade (full bundle) / scp of the full bundle = {tb/tc:.2f}; re-shipping sends {full/max(sb,1):.1f}x the bytes")
PY

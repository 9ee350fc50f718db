#!/usr/bin/env bash
# Transport benchmark, side by side in one run on the same fast sshd test nodes (loopback):
#   1. per-command round trip: darkport exec on an open session vs `ssh host true` (new
#      connection each) vs `ssh` through an OpenSSH ControlMaster (an open session too);
#   2. upload of a 1 GiB file to 1 node: darkport (verified on the node) vs scp vs scp -O;
#   3. the same file to N nodes (default 10): darkport in parallel vs scp sequential and parallel.
# Knobs: BENCH_NODES (10), BENCH_SIZE_MB (1024), BENCH_RTT (500).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
N=${BENCH_NODES:-10}
SIZE_MB=${BENCH_SIZE_MB:-1024}
RTT_N=${BENCH_RTT:-500}

cargo build -q --release --example transport_bench --example nodes
BENCH=$T/release/examples/transport_bench
NODES=$T/release/examples/nodes
dir=$PWD/.bench-nodes
"$NODES" down "$dir" 2>/dev/null || true
"$NODES" up "$N" "$dir" >/dev/null
cleanup() { "$NODES" down "$dir" || true; rm -rf "$dir"; }
trap cleanup EXIT
inv=$dir/inventory.ini
kh=$dir/known_hosts
key=$dir/id_ed25519
ip() { awk -v n="node$1" '$1==n { sub("ansible_host=", "", $2); print $2 }' "$inv"; }
port() { awk -v n="node$1" '$1==n { sub("ansible_port=", "", $3); print $3 }' "$inv"; }
SSHO=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$kh" -i "$key")

file=/var/tmp/darkport-bench-${SIZE_MB}m.bin
if [ "$(stat -c %s "$file" 2>/dev/null || echo 0)" != $((SIZE_MB * 1024 * 1024)) ]; then
  echo "generating $file ($SIZE_MB MiB random)"
  head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$file.tmp" && mv "$file.tmp" "$file"
fi
bytes=$(stat -c %s "$file")
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps() { awk -v s="$1" -v n="$2" -v b="$bytes" 'BEGIN { printf "%.1f", b * n / s / 1e6 }'; }
clean_dest() { for i in $(seq 1 "$N"); do rm -f "$dir/node$i/root/srv/bench.bin" "$dir/node$i/root/srv/bench.bin.part"; done; }

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $N nodes; file $SIZE_MB MiB"

# 1. Round trips
ours=$("$BENCH" "$inv" "$kh" rtt "$RTT_N" 2>/dev/null)
ours_ms=${ours##*exec_ms=}
connect_ms=${ours%% *}; connect_ms=${connect_ms#connect_ms=}
reps=20
t0=$(now)
for _ in $(seq $reps); do ssh "${SSHO[@]}" -p "$(port 1)" root@"$(ip 1)" true; done
t1=$(now)
ssh_ms=$(awk -v s="$(elapsed "$t0" "$t1")" -v n=$reps 'BEGIN { printf "%.2f", s / n * 1000 }')
sock=$dir/cm.sock
ssh "${SSHO[@]}" -p "$(port 1)" -o ControlMaster=yes -o "ControlPath=$sock" -fN root@"$(ip 1)"
reps=100
t0=$(now)
for _ in $(seq $reps); do ssh "${SSHO[@]}" -o "ControlPath=$sock" -p "$(port 1)" root@"$(ip 1)" true; done
t1=$(now)
cm_ms=$(awk -v s="$(elapsed "$t0" "$t1")" -v n=$reps 'BEGIN { printf "%.2f", s / n * 1000 }')
ssh "${SSHO[@]}" -o "ControlPath=$sock" -O exit root@"$(ip 1)" 2>/dev/null || true
echo
echo "exec round trip (ms/command)      darkport  ssh host true   ratio   ssh via ControlMaster   ratio"
printf "  %-31s %8s  %13s  %6s   %21s  %6s\n" "open session ($RTT_N cmds)" "$ours_ms" "$ssh_ms" \
  "$(ratio "$ssh_ms" "$ours_ms")x" "$cm_ms" "$(ratio "$cm_ms" "$ours_ms")x"
echo "  darkport connect + auth: ${connect_ms} ms"

# 2. One node
clean_dest
t0=$(now); "$BENCH" "$inv" "$kh" upload "$file" /srv/bench.bin 1 >/dev/null; t1=$(now)
d1=$(elapsed "$t0" "$t1")
clean_dest
t0=$(now); scp -q "${SSHO[@]}" -P "$(port 1)" "$file" root@"$(ip 1)":/srv/bench.bin; t1=$(now)
s1=$(elapsed "$t0" "$t1")
clean_dest
t0=$(now); scp -O -q "${SSHO[@]}" -P "$(port 1)" "$file" root@"$(ip 1)":/srv/bench.bin; t1=$(now)
o1=$(elapsed "$t0" "$t1")
clean_dest
# OpenSSH doing darkport's work: stream into a file, then hash it on the node.
SAME='cat > /srv/bench.bin && openssl dgst -sha256 -r < /srv/bench.bin'
t0=$(now); ssh "${SSHO[@]}" -p "$(port 1)" root@"$(ip 1)" "$SAME" <"$file" >/dev/null; t1=$(now)
w1=$(elapsed "$t0" "$t1")
clean_dest
echo
echo "upload $SIZE_MB MiB to 1 node        seconds   MB/s"
printf "  %-31s %7s  %6s\n" "darkport (+sha256 on node)" "$d1" "$(mbps "$d1" 1)"
printf "  %-31s %7s  %6s   darkport throughput = %s of scp's\n" "scp (sftp)" "$s1" "$(mbps "$s1" 1)" \
  "$(awk -v a="$s1" -v b="$d1" 'BEGIN { printf "%.0f%%", a / b * 100 }')"
printf "  %-31s %7s  %6s   darkport throughput = %s of scp -O's\n" "scp -O (legacy scp)" "$o1" "$(mbps "$o1" 1)" \
  "$(awk -v a="$o1" -v b="$d1" 'BEGIN { printf "%.0f%%", a / b * 100 }')"
printf "  %-31s %7s  %6s   darkport throughput = %s of OpenSSH's doing the same work\n" "ssh 'cat > f; openssl dgst f'" "$w1" "$(mbps "$w1" 1)" \
  "$(awk -v a="$w1" -v b="$d1" 'BEGIN { printf "%.0f%%", a / b * 100 }')"

# 3. N nodes
t0=$(now); "$BENCH" "$inv" "$kh" upload "$file" /srv/bench.bin "$N" >/dev/null; t1=$(now)
dn=$(elapsed "$t0" "$t1")
clean_dest
t0=$(now)
for i in $(seq 1 "$N"); do scp -q "${SSHO[@]}" -P "$(port "$i")" "$file" root@"$(ip "$i")":/srv/bench.bin; done
t1=$(now)
sn=$(elapsed "$t0" "$t1")
clean_dest
t0=$(now)
for i in $(seq 1 "$N"); do scp -q "${SSHO[@]}" -P "$(port "$i")" "$file" root@"$(ip "$i")":/srv/bench.bin & done
wait
t1=$(now)
pn=$(elapsed "$t0" "$t1")
clean_dest
t0=$(now)
for i in $(seq 1 "$N"); do ssh "${SSHO[@]}" -p "$(port "$i")" root@"$(ip "$i")" "$SAME" <"$file" >/dev/null & done
wait
t1=$(now)
wn=$(elapsed "$t0" "$t1")
clean_dest
echo
echo "upload $SIZE_MB MiB to $N nodes       seconds   MB/s (aggregate)"
printf "  %-31s %7s  %6s\n" "darkport (parallel, verified)" "$dn" "$(mbps "$dn" "$N")"
printf "  %-31s %7s  %6s   darkport is %sx faster\n" "scp sequential" "$sn" "$(mbps "$sn" "$N")" "$(ratio "$sn" "$dn")"
printf "  %-31s %7s  %6s   darkport throughput = %s of scp's\n" "scp parallel" "$pn" "$(mbps "$pn" "$N")" \
  "$(awk -v a="$pn" -v b="$dn" 'BEGIN { printf "%.0f%%", a / b * 100 }')"
printf "  %-31s %7s  %6s   darkport throughput = %s of OpenSSH's doing the same work\n" "ssh 'cat; openssl dgst' parallel" "$wn" "$(mbps "$wn" "$N")" \
  "$(awk -v a="$wn" -v b="$dn" 'BEGIN { printf "%.0f%%", a / b * 100 }')"

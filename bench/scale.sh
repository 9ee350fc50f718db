#!/usr/bin/env bash
# Scale benchmark: a site of N hosts (fast sshd nodes on loopback, each its own sshd with
# OpenSSH's default limits: MaxStartups 10:30:100, MaxSessions 10, as a customer's hosts have).
# For each N in BENCH_SIZES (default "10 50 100 250"), in one run:
#   darkport run            bench/playbook/site.yml (60 tasks), first run on clean nodes and
#                           re-run; default forks (64)
#   darkport status         every node's state, containers and the site line
#   darkport support-bundle logs and facts of every node into one archive
#   darkport install        the example product 1.0.0 (registry on node1, no container
#                           runtime on these nodes: the install playbook checks every image
#                           against the site registry instead), then upgrade to the 1.1.0
#                           delta bundle, then uninstall (which leaves the nodes
#                           clean for the next size); BENCH_INSTALL=0 skips them
# and, for N in BENCH_PEER_SIZES (default "10 50"), the same playbook by
#   ansible-playbook        (forks 50, pipelining on, ControlPersist as by default)
#   pyinfra                 (bench/playbook/deploy.py, --parallel 50)
# Per command: wall time, the controller's peak RSS (largest process, GNU time), the CPU
# seconds the controller used (user+sys) and the whole machine used (/proc/stat: the nodes'
# sshd and shells share these cores, so wall >= machine CPU / cores is the floor here), and
# for darkport the peak thread and open-fd counts (sampled every 20 ms); then the ratios.
#   bench/scale.sh
#   BENCH_SIZES="10 50" BENCH_PEER_SIZES="10" bench/scale.sh   (BENCH_PEER_SIZES="": darkport only)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
SIZES=${BENCH_SIZES:-"10 50 100 250"}
PEER_SIZES=${BENCH_PEER_SIZES-"10 50"}
max=0; for n in $SIZES $PEER_SIZES; do [ "$n" -gt "$max" ] && max=$n; done

# DARKPORT=BIN (and NODES_BIN=BIN) measure given binaries (an A/B of two builds) unbuilt.
if [ -z "${DARKPORT:-}" ]; then cargo build -q --release --bin darkport --example nodes; fi
DP=${DARKPORT:-$PWD/$T/release/darkport}
NODES=${NODES_BIN:-$PWD/$T/release/examples/nodes}
dir=/var/tmp/darkport-bench-scale
"$NODES" down "$dir" 2>/dev/null || true
rm -rf "$dir"
t0=$EPOCHREALTIME
DARKPORT_NODES_SSHD_DEFAULTS=1 "$NODES" up "$max" "$dir" >/dev/null
echo "== $max nodes up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s (OpenSSH default MaxStartups/MaxSessions)"
cleanup() { "$NODES" down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
inv=$dir/inventory.ini
kh=$dir/known_hosts
pb=$PWD/bench/playbook
log=$dir/last.log

wipe() { for i in $(seq 1 "$max"); do rm -rf "$dir/node$i/root/srv/bench"; done; }

# The example product: 1.0.0 and the 1.1.0 delta on it, signed with a fresh key.
INSTALL=${BENCH_INSTALL:-1}
bw=$dir/bundles
if [ "$INSTALL" = 1 ]; then
  mkdir -p "$bw"; cp -a bundle playbooks "$bw/"
  "$bw/bundle/prepare-base.sh" >/dev/null
  "$DP" keygen --no-password --out "$bw/k" >/dev/null
  "$DP" --progress quiet build-bundle -f "$bw/bundle/darkport.yaml" -o "$bw/dist-1.0/" --key "$bw/k.key" >/dev/null
  B10=$(ls "$bw"/dist-1.0/*.darkport)
  "$DP" --progress quiet build-bundle -f "$bw/bundle/darkport-1.1.yaml" -o "$bw/dist-1.1/" --key "$bw/k.key" --since "$B10" >/dev/null
  B11=$(ls "$bw"/dist-1.1/*.darkport)
fi
# siteinv N: invN.ini with the registry on node1 and the vars these nodes need.
siteinv() {
  { cat "$dir/inv$1.ini"; printf '\n[registry]\nnode1\n\n[all:vars]\ndarkport_trust_root=/srv/trust\ndockercoins_run=false\ndarkport_runtime=none\n'; } > "$dir/site$1.ini"
}
SITE=(--known-hosts "$kh" --ca-dir "$dir/ca" --progress plain)
. bench/inventories.sh

# busy: CPU ticks (1/100 s) the whole machine spent outside idle and iowait so far.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# measure NAME CMD...: runs CMD (in $pb), prints nothing; sets SECS, RSS_MIB, CCPU, MCPU,
# THREADS, FDS. With OUT=FILE set, CMD's stdout goes to FILE (its --json report).
measure() {
  local rssf=$dir/rss
  local t0=$EPOCHREALTIME s0 s1
  s0=$(busy)
  if [ -n "${OUT:-}" ]; then
    (cd "$pb" && exec /usr/bin/time -f "%M %U %S" -o "$rssf" "$@") > "$OUT" 2> "$log" &
  else
    (cd "$pb" && exec /usr/bin/time -f "%M %U %S" -o "$rssf" "$@") > "$log" 2>&1 &
  fi
  local tpid=$! pid="" th=0 fd=0
  while kill -0 "$tpid" 2>/dev/null; do
    [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      local t f
      t=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
      f=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l || true)
      [ "${t:-0}" -gt "$th" ] && th=$t
      [ "$f" -gt "$fd" ] && fd=$f
    fi
    sleep 0.02
  done
  local rc=0; wait "$tpid" || rc=$?
  SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  s1=$(busy)
  MCPU=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
  RSS_MIB=$(awk '{ v = $1 } END { printf "%.0f", v / 1024 }' "$rssf" 2>/dev/null || echo "?")
  CCPU=$(awk '{ v = $2 + $3 } END { printf "%.1f", v }' "$rssf" 2>/dev/null || echo "?")
  THREADS=$th; FDS=$fd
  if [ "$rc" -ne 0 ]; then echo "!! $* exited $rc:"; tail -25 "$log"; exit 1; fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# phases: the per-phase wall times of the last install/upgrade (its --json `phases`), longest first.
phases() {
  python3 - "$dir/report.json" <<'PHASES'
import json, sys
p = json.load(open(sys.argv[1])).get("phases", {})
print("      phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(p.items(), key=lambda kv: -kv[1])))
PHASES
}
have ansible-playbook || python3 -m pip install -q --disable-pip-version-check ansible-core
have pyinfra || python3 -m pip install -q --disable-pip-version-check pyinfra
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); darkport $("$DP" --version | cut -d' ' -f2)"
have ansible-playbook && echo "   $(ansible-playbook --version 2>/dev/null | sed -n 1p)"
have pyinfra && echo "   pyinfra $(pyinfra --version 2>&1 | tail -1 | sed 's/.*v//')"

printf "%-6s %-24s %9s %9s %8s %8s %8s %6s\n" hosts command seconds "rss MiB" "ctl cpu" "all cpu" threads fds
declare -A T=()
row() { printf "%-6s %-24s %8ss %9s %7ss %7ss %8s %6s\n" "$1" "$2" "$SECS" "$RSS_MIB" "$CCPU" "$MCPU" "${3:--}" "${4:--}"; }
for n in $(echo $SIZES $PEER_SIZES | tr ' ' '\n' | sort -n | uniq); do
  mkinv "$n"
  if [[ " $SIZES " == *" $n "* ]]; then
    wipe
    measure "$DP" run -i "$dir/inv$n.ini" --known-hosts "$kh" site.yml
    T[dp.first.$n]=$SECS; row "$n" "darkport run (first)" "$THREADS" "$FDS"
    lost() { grep -q "MaxStartups" "$log" && echo "   !! a host was lost to MaxStartups"; grep -E "unreachable=[1-9]|failed=[1-9]" "$log" && exit 1; true; }
    lost
    measure "$DP" run -i "$dir/inv$n.ini" --known-hosts "$kh" site.yml
    T[dp.rerun.$n]=$SECS; row "$n" "darkport run (re-run)" "$THREADS" "$FDS"
    lost
    measure "$DP" status -i "$dir/inv$n.ini" --known-hosts "$kh" --json
    row "$n" "darkport status" "$THREADS" "$FDS"
    measure "$DP" support-bundle -i "$dir/inv$n.ini" --known-hosts "$kh" -o "$dir/support.tar.zst"
    row "$n" "darkport support-bundle" "$THREADS" "$FDS"
    if [ "$INSTALL" = 1 ]; then
      siteinv "$n"
      OUT=$dir/report.json measure "$DP" install -i "$dir/site$n.ini" "${SITE[@]}" --json --pubkey "$bw/k.pub" "$B10"
      T[dp.install.$n]=$SECS; row "$n" "darkport install 1.0.0" "$THREADS" "$FDS"; phases
      OUT=$dir/report.json measure "$DP" upgrade -i "$dir/site$n.ini" "${SITE[@]}" --json --pubkey "$bw/k.pub" "$B11"
      T[dp.upgrade.$n]=$SECS; row "$n" "darkport upgrade 1.1.0" "$THREADS" "$FDS"; phases
      measure "$DP" uninstall -i "$dir/site$n.ini" "${SITE[@]}"
      row "$n" "darkport uninstall" "$THREADS" "$FDS"
    fi
  fi
  if [[ " $PEER_SIZES " == *" $n "* ]]; then
    if have ansible-playbook; then
      wipe
      for r in first rerun; do
        measure env ANSIBLE_PIPELINING=1 ANSIBLE_FORKS=50 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
          ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ansible-playbook -i "$dir/inv$n.ini" site.yml
        T[an.$r.$n]=$SECS; row "$n" "ansible-playbook ($r)"
      done
    fi
    if have pyinfra; then
      wipe
      for r in first rerun; do
        measure pyinfra -y --parallel 50 "$dir/inv$n.py" deploy.py
        T[py.$r.$n]=$SECS; row "$n" "pyinfra ($r)"
      done
    fi
  fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.1fx", a / b; else print "-" }'; }
echo "== ratios (first run / re-run)"
for n in $PEER_SIZES; do
  [[ " $SIZES " == *" $n "* ]] || continue
  echo "   $n hosts: ansible/darkport $(ratio "${T[an.first.$n]:-}" "${T[dp.first.$n]}") / $(ratio "${T[an.rerun.$n]:-}" "${T[dp.rerun.$n]}"), pyinfra/darkport $(ratio "${T[py.first.$n]:-}" "${T[dp.first.$n]}") / $(ratio "${T[py.rerun.$n]:-}" "${T[dp.rerun.$n]}")"
done
lo=$(echo $SIZES | tr ' ' '\n' | sort -n | head -1)
for n in $SIZES; do
  [ "$n" = "$lo" ] && continue
  echo "   darkport $n hosts / $lo hosts: $(ratio "${T[dp.first.$n]}" "${T[dp.first.$lo]}") (first), $(ratio "${T[dp.rerun.$n]}" "${T[dp.rerun.$lo]}") (re-run)"
  [ "$INSTALL" = 1 ] && echo "   darkport $n hosts / $lo hosts: $(ratio "${T[dp.install.$n]}" "${T[dp.install.$lo]}") (install), $(ratio "${T[dp.upgrade.$n]}" "${T[dp.upgrade.$lo]}") (upgrade)"
done

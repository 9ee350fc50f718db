#!/usr/bin/env bash
# Playbook benchmark, side by side in one run on the same fast sshd test nodes (loopback):
# a 60-task install playbook (dirs, 20 copies, 10 templates in a loop, 15 commands, 5
# lineinfile, stat+when, 10 small files, a handler) on 1, 5 and 10 nodes, first run on clean
# nodes and idempotent re-run, by:
#   darkport run            (release build, forks 10)
#   ansible-playbook        (forks 10, pipelining on, ControlPersist as by default)
#   pyinfra                 (bench/playbook/deploy.py: the same work, --parallel 10)
# Knobs: BENCH_SIZES ("1 5 10"), BENCH_PEERS ("ansible pyinfra").
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
SIZES=${BENCH_SIZES:-"1 5 10"}
PEERS=${BENCH_PEERS:-"ansible pyinfra"}
max=0; for n in $SIZES; do [ "$n" -gt "$max" ] && max=$n; done

cargo build -q --release --bin darkport --example nodes
DP=$T/release/darkport
NODES=$T/release/examples/nodes
dir=$PWD/.bench-pb-nodes
"$NODES" down "$dir" 2>/dev/null || true
"$NODES" up "$max" "$dir" >/dev/null
cleanup() { "$NODES" down "$dir" || true; rm -rf "$dir"; }
trap cleanup EXIT
inv=$dir/inventory.ini
kh=$dir/known_hosts
key=$dir/id_ed25519
pb=$PWD/bench/playbook

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }
wipe() { for i in $(seq 1 "$max"); do rm -rf "$dir/node$i/root/srv/bench"; done; }

. bench/inventories.sh

run_dp() { "$DP" run -i "$dir/inv$1.ini" --known-hosts "$kh" -f 10 "$pb/site.yml" > "$dir/dp.log" 2>&1 || { cat "$dir/dp.log"; exit 1; }; }
run_ansible() {
  (cd "$pb" && ANSIBLE_PIPELINING=1 ANSIBLE_FORKS=10 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ansible-playbook -i "$dir/inv$1.ini" site.yml > "$dir/ansible.log" 2>&1) \
    || { cat "$dir/ansible.log"; exit 1; }
}
run_pyinfra() {
  (cd "$pb" && pyinfra -y --parallel 10 "$dir/inv$1.py" deploy.py > "$dir/pyinfra.log" 2>&1) || { tail -30 "$dir/pyinfra.log"; exit 1; }
}

have() { command -v "$1" >/dev/null 2>&1; }
# The peers come from PyPI (ansible-core is also installed by scripts/deps.sh).
have ansible-playbook || python3 -m pip install -q --disable-pip-version-check ansible-core
have pyinfra || python3 -m pip install -q --disable-pip-version-check pyinfra
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); tasks: 60; darkport $("$DP" --version | cut -d' ' -f2)"
have ansible-playbook && echo "   $(ansible-playbook --version | head -1)"
have pyinfra && echo "   pyinfra $(pyinfra --version 2>&1 | tail -1 | sed 's/.*v//')"
printf "%-6s %-9s %10s %10s %10s %9s %9s\n" nodes run darkport ansible pyinfra "ans/dp" "pyi/dp"
for n in $SIZES; do
  mkinv "$n"
  declare -A t=()
  for tool in dp $PEERS; do
    [ "$tool" = ansible ] && ! have ansible-playbook && continue
    [ "$tool" = pyinfra ] && ! have pyinfra && continue
    wipe
    for r in first rerun; do
      t0=$(now); "run_$( [ "$tool" = dp ] && echo dp || echo "$tool")" "$n"; t1=$(now)
      t[$tool.$r]=$(elapsed "$t0" "$t1")
    done
  done
  for r in first rerun; do
    dp=${t[dp.$r]}; an=${t[ansible.$r]:-0}; py=${t[pyinfra.$r]:-0}
    printf "%-6s %-9s %9ss %9ss %9ss %8sx %8sx\n" "$n" "$r" "$dp" "$an" "$py" "$(ratio "$an" "$dp")" "$(ratio "$py" "$dp")"
  done
  unset t
done
# Sanity: the darkport re-run changed nothing.
grep -q "changed=0" "$dir/dp.log" && echo "darkport re-run: changed=0 on every host" || { echo "darkport re-run changed something:"; tail -15 "$dir/dp.log"; }

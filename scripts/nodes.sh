#!/usr/bin/env bash
# Start / stop test nodes by hand (the same harness the tests use, tests/support/nodes).
#   scripts/nodes.sh up [N]     N fast sshd nodes (default 3); CLUSTER=1 for Docker nodes
#   scripts/nodes.sh down
# Prints the inventory path; known_hosts and the client key sit next to it (.nodes/).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/.nodes"
cmd=${1:-up}
case "$cmd" in
  up)
    n=${2:-${N:-3}}
    extra=()
    [ "${CLUSTER:-0}" = 1 ] && extra=(--cluster)
    inv=$(cargo run -q --example nodes -- up "$n" "${extra[@]}" "$dir")
    echo "inventory: $inv" >&2
    echo "known_hosts: $dir/known_hosts  (e.g. darkport ... -i $inv)" >&2
    echo "$inv"
    ;;
  down)
    cargo run -q --example nodes -- down "$dir"
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 up [N] | down" >&2; exit 2 ;;
esac

#!/bin/sh
# One command on stdin; /data/counters holds "key value" lines. Writers take /data/.lock.
read -r cmd key val || exit 0
key=$(echo "$key" | tr -cd 'a-zA-Z0-9_')
[ -n "$key" ] || { echo "ERR no key"; exit 0; }
db=/data/counters
get() { v=$(sed -n "s/^$key //p" "$db" 2>/dev/null | head -n 1); echo "${v:-0}"; }
put() {
  { grep -v "^$key " "$db" 2>/dev/null; echo "$key $1"; } > "$db.tmp.$$" && mv "$db.tmp.$$" "$db"
}
locked() {
  n=0
  until mkdir /data/.lock 2>/dev/null; do n=$((n + 1)); [ $n -lt 500 ] || rmdir /data/.lock; sleep 0.01; done
  "$@"; rc=$?
  rmdir /data/.lock
  return $rc
}
incr() { v=$(($(get) + 1)); put "$v"; echo "$v"; }
case "$cmd" in
  INCR) locked incr;;
  GET) get;;
  SET) locked put "$val"; echo OK;;
  *) echo "ERR unknown command";;
esac

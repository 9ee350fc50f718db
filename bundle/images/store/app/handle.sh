#!/bin/sh
read -r cmd key val || exit 0
key=$(echo "$key" | tr -cd 'a-zA-Z0-9_')
[ -n "$key" ] || { echo "ERR no key"; exit 0; }
f="/data/$key"
case "$cmd" in
  INCR) v=$(cat "$f" 2>/dev/null || echo 0); v=$((v + 1)); echo "$v" > "$f.tmp" && mv "$f.tmp" "$f"; echo "$v";;
  GET) cat "$f" 2>/dev/null || echo 0;;
  SET) echo "$val" > "$f.tmp" && mv "$f.tmp" "$f"; echo OK;;
  *) echo "ERR unknown command";;
esac

#!/bin/sh
# dockercoins store 2.0: the same protocol as 1.x (INCR/GET/SET, one command per connection),
# but every counter lives in one file, /data/counters, a "key value" line each (1.x kept one
# file per key). It refuses to start on 1.x data: playbooks/migrations/0001-store-v2.yml
# converts it.
for f in /data/*; do
  [ -f "$f" ] || continue
  case "${f##*/}" in counters|counters.*) ;; *)
    echo "store: $f is 1.x data; run the 2.0 migration first" >&2; exit 1;;
  esac
done
exec nc -ll -p "${PORT:-6379}" -e /app/handle.sh

#!/bin/sh
# Mines "dockercoins": random bytes from rng, hashed by hasher; a hash starting with 0 is a coin.
RNG=${RNG_URL:-http://127.0.0.1:8001/cgi-bin/rng?32}
HASHER=${HASHER_URL:-http://127.0.0.1:8002/cgi-bin/hash}
STORE_HOST=${STORE_HOST:-127.0.0.1}
STORE_PORT=${STORE_PORT:-6379}
while :; do
  wget -q -O /tmp/bytes "$RNG" || { sleep 1; continue; }
  h=$(wget -q -O - --post-file=/tmp/bytes "$HASHER") || { sleep 1; continue; }
  echo "INCR hashes" | nc "$STORE_HOST" "$STORE_PORT" >/dev/null
  case "$h" in 0*) echo "INCR coins" | nc "$STORE_HOST" "$STORE_PORT" >/dev/null;; esac
  sleep "${WORKER_DELAY:-0.1}"
done

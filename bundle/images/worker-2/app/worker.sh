#!/bin/sh
# dockercoins worker 2.0: hashes locally (the hasher service is gone in 2.0); a hash starting
# with 0 is a coin.
RNG=${RNG_URL:-http://127.0.0.1:8001/cgi-bin/rng?32}
STORE_HOST=${STORE_HOST:-127.0.0.1}
STORE_PORT=${STORE_PORT:-6379}
while :; do
  h=$(wget -q -O - "$RNG" | sha256sum | cut -d' ' -f1) || { sleep 1; continue; }
  echo "INCR hashes" | nc "$STORE_HOST" "$STORE_PORT" >/dev/null
  case "$h" in 0*) echo "INCR coins" | nc "$STORE_HOST" "$STORE_PORT" >/dev/null;; esac
  sleep "${WORKER_DELAY:-0.1}"
done

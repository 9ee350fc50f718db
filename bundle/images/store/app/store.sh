#!/bin/sh
# A redis-like counter store: one command per connection, keys are files in /data.
#   INCR key -> new value    GET key -> value    SET key value -> OK
exec nc -ll -p "${PORT:-6379}" -e /app/handle.sh

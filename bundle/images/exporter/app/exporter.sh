#!/bin/sh
# dockercoins exporter (new in 2.0): the store's counters in Prometheus' text format.
exec httpd -f -p "${PORT:-9100}" -h /www

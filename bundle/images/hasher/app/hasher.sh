#!/bin/sh
exec httpd -f -p "${PORT:-8002}" -h /www

#!/bin/sh
exec httpd -f -p "${PORT:-8000}" -h /www

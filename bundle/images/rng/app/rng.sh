#!/bin/sh
exec httpd -f -p "${PORT:-8001}" -h /www

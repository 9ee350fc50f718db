#!/bin/sh
exec httpd -f -p "${PORT:-80}" -h /www

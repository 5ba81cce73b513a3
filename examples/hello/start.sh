#!/bin/sh
mkdir -p /www
echo "hello from $(hostname)" > /www/index.html
exec busybox httpd -f -p 80 -h /www

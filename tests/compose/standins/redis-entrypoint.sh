#!/bin/sh
# Official image behaviour: `redis-server` runs as user redis, on every address.
set -e
if [ "$1" = "redis-server" ]; then
  shift
  exec setpriv --reuid=redis --regid=redis --init-groups \
    redis-server --bind '* -::*' --protected-mode no --dir /data "$@"
fi
exec "$@"

#!/bin/bash
# Stand-in for the official redis image's entrypoint: `redis-server ARGS` runs as the redis
# user; without a config file, protected mode is turned off (as the official entrypoint does),
# so other containers on the network can connect.
set -euo pipefail
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "${1:-}" = redis-server ]; then
  case "${2:-}" in *.conf) ;; *) set -- "$@" --protected-mode no ;; esac
  mkdir -p /data && chown redis:redis /data
  cd /data
  [ "$(id -u)" = 0 ] && exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"

#!/bin/bash
# The official image's environment contract, in short: the default user comes
# from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (used when the node's
# database is first created).
set -euo pipefail
if [ "${1:-}" = "rabbitmq-server" ]; then
  {
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
    [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
    [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
    echo "default_permissions.configure = .*"
    echo "default_permissions.read = .*"
    echo "default_permissions.write = .*"
  } > /etc/rabbitmq/rabbitmq.conf
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
  # Logs to the console, as the official image does.
  export RABBITMQ_LOGS=- 
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq rabbitmq-server
fi
exec "$@"

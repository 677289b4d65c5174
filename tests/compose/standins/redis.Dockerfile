# Stand-in for redis:7.4.5-alpine: Debian's redis-server 7.0.
# Contract kept: `redis-server ...` as the command, listening on every address
# without protected mode (as the official image does), running as user redis;
# redis-cli on PATH for the healthcheck.
FROM debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
LABEL dashboard.standin="redis:7.4.5-alpine"
CMD ["redis-server"]

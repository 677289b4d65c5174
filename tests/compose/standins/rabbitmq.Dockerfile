# Stand-in for rabbitmq:4.1.4-management-alpine: Debian's rabbitmq-server 3.10
# with the management and prometheus plugins (the official image enables both). Contract kept: RABBITMQ_DEFAULT_USER /
# RABBITMQ_DEFAULT_PASS create the user on the first start (data in
# /var/lib/rabbitmq, node rabbit@<hostname>); AMQP on 5672, management on 15672, metrics on 15692;
# rabbitmq-diagnostics on PATH for the healthcheck.
FROM debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 5672 15672
ENTRYPOINT ["docker-entrypoint.sh"]
LABEL dashboard.standin="rabbitmq:4.1.4-management-alpine"
CMD ["rabbitmq-server"]

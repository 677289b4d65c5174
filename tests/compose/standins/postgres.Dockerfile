# Stand-in for postgres:17.6-alpine: Debian's PostgreSQL 15.
# Contract kept (docker-entrypoint.sh): POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB create the superuser and database on the first start of an empty
# PGDATA (/var/lib/postgresql/data); password login over TCP; pg_isready on PATH.
FROM debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
LABEL dashboard.standin="postgres:17.6-alpine"
CMD ["postgres"]

# Stand-in for prom/prometheus:v2.42.0 (the `ops` profile's Prometheus): Debian 12's
# prometheus package, the same 2.42.0, unpacked (no service scripts). Honours the part
# of the official image's contract docker-compose.yml relies on: /bin/prometheus as the
# entrypoint, /etc/prometheus for the configuration, /prometheus for the data, user nobody.
FROM debian:12.11-slim
RUN apt-get update \
 && cd /tmp && apt-get download prometheus \
 && dpkg-deb -x prometheus_*.deb /tmp/unpacked \
 && cp /tmp/unpacked/usr/bin/prometheus /tmp/unpacked/usr/bin/promtool /bin/ \
 && cp -r /tmp/unpacked/usr/share/prometheus /usr/share/prometheus \
 && mkdir -p /etc/prometheus /prometheus && chown nobody:nogroup /prometheus \
 && rm -rf /tmp/unpacked /tmp/prometheus_*.deb /var/lib/apt/lists/*
USER nobody
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
LABEL dashboard.standin="prom/prometheus:v2.42.0"
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

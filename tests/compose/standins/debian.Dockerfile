# Stand-in for debian:12.11-slim: Debian bookworm minbase (debootstrap, imported
# by build.sh as fd-standin/bookworm:minbase) with the same apt sources as the
# official image and this machine's extra CA certificates, so that package
# downloads through an intercepting proxy verify (update-ca-certificates adds
# them when an image installs ca-certificates). Like the official image, apt
# keeps no downloaded .deb files (docker-clean).
FROM fd-standin/bookworm:minbase
COPY debian.sources /etc/apt/sources.list.d/debian.sources
COPY host-ca/ /usr/local/share/ca-certificates/
COPY docker-clean.apt.conf /etc/apt/apt.conf.d/docker-clean
RUN rm -f /etc/apt/sources.list \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/cache/debconf/*-old
# npm (Node) reads extra CAs from here once an image has installed ca-certificates.
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL dashboard.standin="debian:12.11-slim"
CMD ["bash"]

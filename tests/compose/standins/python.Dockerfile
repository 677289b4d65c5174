# Stand-in for python:3.11.14-slim-bookworm: Debian's python3.11 (3.11.2) and pip.
# What the project's Dockerfiles rely on: `python` and `pip` on PATH, pip may
# install into the system interpreter (the official image has no PEP 668 marker),
# TLS trusts this machine's CA certificates (uv: SSL_CERT_FILE); dbm.gnu, as the
# official image builds it (libgdbm-dev): shelve's sync, so celery beat's, writes the
# schedule file (Debian's dbm.ndbm fallback only writes it on close, and beat's
# healthcheck, deploy/compose/beat-check, watches that file).
FROM debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3-pip python3-venv python-is-python3 python3-gdbm ca-certificates \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
LABEL dashboard.standin="python:3.11.14-slim-bookworm"
CMD ["python3"]

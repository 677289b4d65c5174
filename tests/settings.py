"""Settings of the system tests: the admin's settings with a test environment.

The environment is set here, before Django and the pipeline read it, and the
processes that the tests start (workers, datagen, export servers) inherit it.
"""

import os

# TEST_SLOT (default 0) moves every test resource (database, broker virtual
# host, Redis database, ports) aside, so that two suites can run side by side.
SLOT = int(os.environ.get("TEST_SLOT", "0"))
PORT = 18000 + 100 * SLOT

TEST_ENV = {
    "DJANGO_SECRET_KEY": "tests-only-secret-key-" + "0123456789abcdef" * 3,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    # pytest-django creates test_<POSTGRES_DB>; the workers are pointed at it.
    "POSTGRES_DB": f"function_dashboard_{SLOT}",
    # Debug is off here, so the admin requires its secrets; the local PostgreSQL trusts
    # 127.0.0.1, so these passwords are set on the roles but checked by no one.
    "POSTGRES_PASSWORD": "tests-only-postgres-password",
    "DATAGEN_POSTGRES_PASSWORD": "tests-only-datagen-password",
    # PostgreSQL roles are cluster-wide: datagen's role is one per slot too.
    "DATAGEN_POSTGRES_USER": f"datagen_test{SLOT}",
    "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/function_dashboard_test{SLOT or ''}",
    "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:6379/{15 - SLOT}",
    "DATAGEN_PORT": str(PORT + 1),
    "DATAGEN_URL": f"http://127.0.0.1:{PORT + 1}",
    "EXPORTER_URLS": f"http://127.0.0.1:{PORT + 11},http://127.0.0.1:{PORT + 12}",
    "ADMIN_PORT": str(PORT),
    "FLOWER_PORT": str(PORT + 55),
    "RENDER_CONCURRENCY": "2",
    "POINTS_CONCURRENCY": "2",
    "PERSIST_CONCURRENCY": "2",
    "PIPELINE_MAX_RETRIES": "50",
    "PIPELINE_RETRY_BACKOFF": "1",
    # A hung export server costs a render this long (tests/test_exporter_failover.py freezes one).
    "PIPELINE_HTTP_TIMEOUT": "10",
    # Batches of more than 10 rows take the fan-out path (one message, sent on by the points worker).
    "PIPELINE_FANOUT_OVER": "10",
    "ADD_WAIT_SECONDS": "30",
    "CELERY_LOG_LEVEL": "WARNING",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

from dashboard.settings import *  # noqa: E402,F403

STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - WhiteNoise warns when it is missing

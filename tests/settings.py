"""Settings of the system tests: the admin's settings with a test environment.

The environment is set here, before Django and the pipeline read it, and the
processes that the tests start (workers, datagen, export servers) inherit it.
"""

import os

TEST_ENV = {
    "DJANGO_SECRET_KEY": "tests-only-secret-key",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    # pytest-django creates test_<POSTGRES_DB>; the workers are pointed at it.
    "POSTGRES_DB": "function_dashboard",
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/function_dashboard_test",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/15",
    "DATAGEN_PORT": "18001",
    "DATAGEN_URL": "http://127.0.0.1:18001",
    "EXPORTER_URLS": "http://127.0.0.1:17801,http://127.0.0.1:17802",
    "ADMIN_PORT": "18000",
    "FLOWER_PORT": "15555",
    "RENDER_CONCURRENCY": "2",
    "POINTS_CONCURRENCY": "2",
    "PERSIST_CONCURRENCY": "2",
    "PIPELINE_MAX_RETRIES": "3",
    "PIPELINE_RETRY_BACKOFF": "0.5",
    "ADD_WAIT_SECONDS": "30",
    "CELERY_LOG_LEVEL": "WARNING",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

from dashboard.settings import *  # noqa: E402,F403

STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - WhiteNoise warns when it is missing

import os

import pytest
import redis
from django.db import connection

from tests.stack import Stack


@pytest.fixture
def axes_clean():
    """No lockout counts before or after the test (cache and database)."""
    from axes.models import AccessAttempt
    from django.core.cache import cache

    cache.clear()
    AccessAttempt.objects.all().delete()
    yield
    AccessAttempt.objects.all().delete()


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker):
    """The real workers, datagen and export servers, pointed at the test database."""
    from pipeline import settings as pipeline_settings
    from pipeline.celery import app

    with django_db_blocker.unblock():
        test_db = connection.settings_dict["NAME"]
    env = {**os.environ, "POSTGRES_DB": test_db, "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    redis.Redis.from_url(pipeline_settings.RESULT_BACKEND).flushdb()
    app.control.purge()
    stack = Stack(env)
    try:
        stack.start()
    except BaseException:
        print(stack.logs())
        stack.stop()
        raise
    yield stack
    stack.stop()

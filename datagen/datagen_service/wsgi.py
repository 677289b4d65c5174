"""WSGI entry point: ``gunicorn --chdir datagen datagen_service.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datagen_service.settings")

application = get_wsgi_application()
# Import the URLconf (views, serializers, drf-spectacular: about 1.5 s) while the worker
# boots, not during its first request.
get_resolver().url_patterns  # noqa: B018

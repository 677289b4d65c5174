"""Create the first superuser from the environment (or the dev default in debug)."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEV_USERNAME = "admin"
DEV_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD "
        "(/ DJANGO_SUPERUSER_EMAIL) if it does not exist; with DJANGO_DEBUG on and no "
        f"variables, the development account {DEV_USERNAME}/{DEV_PASSWORD}."
    )

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
        if not username:
            if not settings.DEBUG:
                self.stdout.write("No DJANGO_SUPERUSER_USERNAME set: no superuser created.")
                return
            username, password = DEV_USERNAME, DEV_PASSWORD
        if not password:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD must be set with the username.")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        users.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Created superuser {username!r} (password: {password}).")

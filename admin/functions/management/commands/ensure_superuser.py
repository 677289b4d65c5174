"""The bootstrap's superuser: Django's ``createsuperuser --noinput``, once.

``createsuperuser --noinput`` reads DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD
and DJANGO_SUPERUSER_EMAIL; this command only makes it idempotent (nothing happens
when the user exists), requires the password, checks it against the password
validators when debug is off, and in debug with no variables uses the
development account admin/admin. No password is ever written to the output.
"""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEV_USERNAME = "admin"
DEV_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "createsuperuser --noinput from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD "
        "(/ DJANGO_SUPERUSER_EMAIL) unless that user exists; with DJANGO_DEBUG on and no "
        f"variables, the development account {DEV_USERNAME!r}."
    )

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        if not username:
            if not settings.DEBUG:
                self.stdout.write("No DJANGO_SUPERUSER_USERNAME set: no superuser created.")
                return
            username = DEV_USERNAME
            os.environ.setdefault("DJANGO_SUPERUSER_PASSWORD", DEV_PASSWORD)
        if get_user_model().objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not password:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD must be set with DJANGO_SUPERUSER_USERNAME.")
        if not settings.DEBUG:
            try:
                validate_password(password, get_user_model()(username=username))
            except ValidationError as exc:
                raise CommandError("DJANGO_SUPERUSER_PASSWORD is too weak: " + " ".join(exc.messages)) from exc
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
        call_command(
            "createsuperuser", interactive=False, username=username, email=email, stdout=self.stdout, verbosity=0
        )
        self.stdout.write(f"Created superuser {username!r}.")

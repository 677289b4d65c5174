from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _ensure_datagen_role(sender, using: str, **kwargs) -> None:
    # Every `migrate` (the bootstrap, the test database) also makes sure datagen's
    # least-privilege role exists with CONNECT on this database.
    from functions.management.commands.ensure_datagen_role import ensure_datagen_role

    ensure_datagen_role(using)


class FunctionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "functions"
    verbose_name = _("Function Dashboard")

    def ready(self) -> None:
        post_migrate.connect(_ensure_datagen_role, sender=self, dispatch_uid="functions.ensure_datagen_role")

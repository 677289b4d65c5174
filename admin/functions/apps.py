from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _ensure_roles(sender, using: str, **kwargs) -> None:
    # Every `migrate` (the bootstrap, the test database) also makes sure datagen's
    # least-privilege role exists with CONNECT on this database, and, when
    # ADMIN_POSTGRES_USER is set, hands the schema (new tables too) to the admin's role.
    from functions.management.commands.ensure_admin_role import ensure_admin_role
    from functions.management.commands.ensure_datagen_role import ensure_datagen_role

    ensure_datagen_role(using)
    ensure_admin_role(using)


class FunctionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "functions"
    verbose_name = _("Function Dashboard")

    def ready(self) -> None:
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="functions.ensure_roles")

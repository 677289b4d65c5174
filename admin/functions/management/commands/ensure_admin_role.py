"""Give the admin's tables to a role that owns only its schema (optional, for deployments).

When ``ADMIN_POSTGRES_USER`` is set, the bootstrap (which migrates as a
superuser, ``POSTGRES_USER``) makes that role:

- a login role that is not a superuser and cannot create databases or roles;
- the owner of the ``public`` schema of this database and of every table,
  sequence and view in it (so later migrations run by the bootstrap are handed
  over too), with CONNECT on this database only.

The admin, the workers and Flower then connect with ``POSTGRES_USER`` set to
that role. Unset (``make dev``), nothing changes.

=============================  =========  ================================================
Variable                       Default    Meaning
=============================  =========  ================================================
``ADMIN_POSTGRES_USER``        (empty)    the admin's own role; empty = keep POSTGRES_USER
``ADMIN_POSTGRES_PASSWORD``    (empty)    its password (sent as a SCRAM verifier)
=============================  =========  ================================================
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg2 import sql
from pydantic import Field

from functions.management.roles import ensure_login_role
from pipeline.api import EnvSettings, load


class AdminRoleEnv(EnvSettings):
    """The variables of the table above (the settings rule of :class:`pipeline.settings.EnvSettings`)."""

    admin_postgres_user: str = Field("", description="the admin's own role; empty = keep POSTGRES_USER")
    admin_postgres_password: str = Field("", description="its password (sent as a SCRAM verifier)")


ALTER_BY_KIND = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def ensure_admin_role(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """Create/update ADMIN_POSTGRES_USER and hand it the public schema; None when unset."""
    env: AdminRoleEnv = load(AdminRoleEnv, "admin role", CommandError)
    name, password = env.admin_postgres_user, env.admin_postgres_password
    if not name:
        return None
    if not password and not settings.DEBUG:
        raise CommandError(
            "ADMIN_POSTGRES_PASSWORD must be set (not empty) with ADMIN_POSTGRES_USER when DJANGO_DEBUG is off"
        )
    role = sql.Identifier(name)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT current_user")
        if name == cursor.fetchone()[0]:
            return name  # already connected as it: nothing to hand over
        ensure_login_role(cursor.cursor, name, password, variable="ADMIN_POSTGRES_USER", owner="the admin")
        cursor.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
        cursor.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
            "AND pg_get_userbyid(c.relowner) <> %s",
            [name],
        )
        for relname, kind in cursor.fetchall():
            cursor.execute(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL(ALTER_BY_KIND[kind]), sql.Identifier("public", relname), role
                )
            )
        # Sequences not owned by a table column (those moved with their table).
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> %s",
            [name],
        )
        for (relname,) in cursor.fetchall():
            cursor.execute(sql.SQL("ALTER SEQUENCE {} OWNER TO {}").format(sql.Identifier("public", relname), role))
    return name


class Command(BaseCommand):
    help = "Hand the admin's schema to ADMIN_POSTGRES_USER, a role that owns only it (no-op when unset)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, **options):
        name = ensure_admin_role(options["database"])
        if name is None:
            self.stdout.write("ADMIN_POSTGRES_USER is not set: the admin keeps POSTGRES_USER.")
        else:
            self.stdout.write(f"The admin's schema belongs to {name!r}.")

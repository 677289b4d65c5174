"""Create or update datagen's own PostgreSQL role (idempotent, least privilege).

datagen only evaluates ``SELECT … FROM generate_series(…)``: it needs to log in
to the database and nothing else. Its role:

- is not a superuser and cannot create databases, roles or replicate;
- belongs to no other role (so no ``pg_read_server_files``,
  ``pg_execute_server_program``, ``pg_read_all_data``, …);
- has no privilege on any table, sequence or schema object of the admin;
- has a connection limit and its own ``statement_timeout`` (a ceiling that
  holds even if datagen's session options were lost).

Environment (read here, by the admin's bootstrap):

=======================================  ==========  ==================================================
Variable                                 Default     Meaning
=======================================  ==========  ==================================================
``DATAGEN_POSTGRES_USER``                ``datagen`` the role's name
``DATAGEN_POSTGRES_PASSWORD``            (empty)     its password; empty = none (debug only)
``DATAGEN_POSTGRES_CONNECTION_LIMIT``    ``20``      most connections the role may hold at once
``DATAGEN_STATEMENT_TIMEOUT_MS``         ``10000``   statement_timeout set on the role
=======================================  ==========  ==================================================

The connecting role (``POSTGRES_USER``) must be a superuser or have
``CREATEROLE``. The password is sent as a SCRAM-SHA-256 verifier, never in clear
text, so it cannot appear in PostgreSQL's statement log.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg2 import sql
from pydantic import Field

from functions.management.roles import ensure_login_role
from pipeline.api import EnvSettings, load

DEFAULT_ROLE = "datagen"


class DatagenRoleEnv(EnvSettings):
    """The variables of the table above (the settings rule of :class:`pipeline.settings.EnvSettings`)."""

    datagen_postgres_user: str = Field(DEFAULT_ROLE, description="the role's name")
    datagen_postgres_password: str = Field("", description="its password; empty = none (debug only)")
    datagen_postgres_connection_limit: int = Field(20, ge=1, description="most connections the role may hold")
    datagen_statement_timeout_ms: int = Field(10000, ge=1, description="statement_timeout set on the role")


def datagen_role_settings() -> dict[str, object]:
    """The role's settings from the environment (empty values fall back to the defaults)."""
    env: DatagenRoleEnv = load(DatagenRoleEnv, "datagen role", CommandError)
    return {
        "name": env.datagen_postgres_user,
        "password": env.datagen_postgres_password,
        "connection_limit": env.datagen_postgres_connection_limit,
        "statement_timeout_ms": env.datagen_statement_timeout_ms,
    }


def ensure_datagen_role(using: str = DEFAULT_DB_ALIAS) -> str:
    """Create or update the role and grant it CONNECT on this database only; returns its name."""
    wanted = datagen_role_settings()
    name = str(wanted["name"])
    if not wanted["password"] and not settings.DEBUG:
        raise CommandError("DATAGEN_POSTGRES_PASSWORD must be set (not empty) when DJANGO_DEBUG is off")
    role = sql.Identifier(name)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT current_user")
        if name == cursor.fetchone()[0]:
            raise CommandError(
                f"DATAGEN_POSTGRES_USER ({name!r}) is the admin's own role: give datagen a role of its own"
            )
        ensure_login_role(
            cursor.cursor,
            name,
            str(wanted["password"]),
            variable="DATAGEN_POSTGRES_USER",
            owner="datagen",
            options=sql.SQL("NOINHERIT CONNECTION LIMIT {}").format(sql.Literal(wanted["connection_limit"])),
        )
        cursor.execute(
            sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                role, sql.Literal(f"{wanted['statement_timeout_ms']}ms")
            )
        )
        cursor.execute(sql.SQL("ALTER ROLE {} SET idle_in_transaction_session_timeout = '60s'").format(role))
        # Membership in any role (pg_read_server_files, pg_execute_server_program, …) is revoked.
        cursor.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
            [name],
        )
        for (group,) in cursor.fetchall():
            cursor.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), role))
        # This database: connect (granted above), nothing else (tables are the admin's).
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'")
        for (schema,) in cursor.fetchall():
            ident = sql.Identifier(schema)
            cursor.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(ident, role))
            cursor.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(ident, role))
            cursor.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(ident, role))
        # Only the admin's role creates objects in its schema (PostgreSQL >= 15 default, made explicit).
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return name


class Command(BaseCommand):
    help = "Create or update datagen's least-privilege PostgreSQL role (DATAGEN_POSTGRES_USER)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, **options):
        name = ensure_datagen_role(options["database"])
        self.stdout.write(f"datagen's PostgreSQL role {name!r} is ready (least privilege).")

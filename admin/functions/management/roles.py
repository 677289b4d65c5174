"""The create-or-alter sequence of the bootstrap's PostgreSQL roles (the admin's and datagen's).

Names are always composed as identifiers (:mod:`psycopg2.sql`), never formatted
into the text. A password is sent as the SCRAM-SHA-256 verifier libpq computes
(``PQencryptPasswordConn``), never in clear text, so it cannot appear in
PostgreSQL's statement log.
"""

from __future__ import annotations

from django.core.management.base import CommandError
from psycopg2 import extensions, sql


def ensure_login_role(
    cursor: extensions.cursor,
    name: str,
    password: str,
    *,
    variable: str,
    owner: str,
    options: sql.Composable | None = None,
) -> None:
    """Create role ``name`` if it is missing, then make it a login role with no power
    (no superuser, no CREATEDB, no CREATEROLE, no replication, no RLS bypass) plus
    ``options``, with ``password`` (empty: none), and let it CONNECT to this database.

    ``cursor``: a psycopg2 cursor of the connection as the bootstrap's role (a superuser or
    CREATEROLE). A superuser role is refused, not demoted: ``variable`` (the setting
    that named it) and ``owner`` (whose role it should be) say so in the error.
    """
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [name])
    row = cursor.fetchone()
    if row is not None and row[0]:
        raise CommandError(
            f"{variable} ({name!r}) names a superuser role; refusing to change it: give {owner} a role of its own"
        )
    role = sql.Identifier(name)
    if row is None:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    verifier = (
        sql.Literal(extensions.encrypt_password(password, name, cursor.connection, "scram-sha-256"))
        if password
        else sql.SQL("NULL")
    )
    cursor.execute(
        sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS {} PASSWORD {}"
        ).format(role, options or sql.SQL(""), verifier)
    )
    cursor.execute("SELECT current_database()")
    cursor.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(cursor.fetchone()[0]), role))

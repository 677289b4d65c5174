"""The benchmarks' database: created if missing, migrated, emptied of functions (Django set up first)."""

from __future__ import annotations

import psycopg2
from django.core.management import call_command
from django.db import connection
from psycopg2 import sql

from functions.models import Function


def create_database() -> None:
    db = connection.settings_dict
    conn = psycopg2.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
    conn.close()
    call_command("migrate", verbosity=0)
    Function.objects.all().delete()

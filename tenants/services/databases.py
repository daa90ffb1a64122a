"""CREATE and DROP DATABASE for the data plane: a silo, or a registered server's data-plane
database. One place for the grants such a database gets, wherever it is made.

Both need an autocommit owner connection to some database of the server (`cfg`); the owner
role must have CREATEDB there.
"""

from __future__ import annotations

from django.conf import settings
from psycopg import sql

from .. import pgconnect, placement

APPLICATION_NAME = "tenantry provisioning"


def database_exists(cfg: dict, name: str) -> bool:
    with pgconnect.connect(cfg, application_name=APPLICATION_NAME) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return found.fetchone() is not None


def database_create(cfg: dict, name: str) -> None:
    """A database cloned from the silo template (it carries pgvector), which only the app
    role may connect to; TEMPORARY for the COPY staging table."""
    ident = sql.Identifier(name)
    with pgconnect.connect(cfg, application_name=APPLICATION_NAME) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                ident, sql.Identifier(settings.SILO_TEMPLATE_DB)
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                ident, sql.Identifier(placement.app_role())
            )
        )


def database_drop(cfg: dict, name: str) -> None:
    """Drop it, ending the sessions still on it (the owner has pg_signal_backend)."""
    with pgconnect.connect(cfg, application_name=APPLICATION_NAME) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

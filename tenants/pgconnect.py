"""psycopg keyword arguments from Django database settings, for the code that needs its own
raw connections: the isolation audit, provisioning's CREATE/DROP DATABASE and tenant moves.

Why raw connections there: they decide themselves when each connection opens and closes, run
DDL or COPY outside Django's transaction handling, and (the audit) must keep going when
tenants/roles.py would refuse a Django connection. Settings still come from tenants.placement,
so each reaches a placement the way the platform does.
"""

from __future__ import annotations

import psycopg

CONNECT_TIMEOUT_SECONDS = 10
# libpq keywords worth passing on from Django's OPTIONS (the rest are Django's own settings).
_LIBPQ_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "channel_binding",
    "gssencmode",
    "target_session_attrs",
    "passfile",
    "service",
    "options",
}


def connect_params(cfg: dict, *, application_name: str, read_only: bool = False) -> dict:
    """psycopg keyword arguments for a Django database settings dict.

    `read_only` makes the whole session read-only (the audit only reads catalogs as the role
    that owns every table, and must not be able to change anything).
    """
    options = dict(cfg.get("OPTIONS", {}))
    params = {
        "dbname": cfg["NAME"],
        "user": cfg["USER"],
        "password": cfg["PASSWORD"],
        "host": options.pop("host", None) or cfg.get("HOST") or None,
        "port": options.pop("port", None) or cfg.get("PORT") or None,
        **{k: v for k, v in options.items() if k in _LIBPQ_OPTIONS},
        "application_name": application_name,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    }
    if read_only:
        params["options"] = f"{params.get('options', '')} -c default_transaction_read_only=on"
    return {k: v for k, v in params.items() if v not in (None, "")}


def connect(cfg: dict, *, application_name: str, autocommit: bool = True, **extra):
    """A new psycopg connection for Django settings `cfg`."""
    params = connect_params(cfg, application_name=application_name)
    return psycopg.connect(autocommit=autocommit, **params, **extra)

"""The web process's database connection pools (DB_POOL, config/settings.py): sized to its
threads and filled before it reports ready.

Why pools there: every gunicorn thread kept its own connection per alias, opened on the
thread's first request (about 13 ms each, two per request) and reopened every DB_CONN_MAX_AGE,
so a first request after a start, and one request per thread every minute, paid for them.
Pooled, the threads share connections that are opened, and replaced when they age out, off
the request path.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connections

from .models import RequestCounter, TenantQuota, UsageRecord
from .services.apikeys import key_lookup_sql


def pools_configure(threads: int) -> None:
    """One connection per thread per pooled alias, so that no thread waits for another's, and
    the connections named for this process in pg_stat_activity (`tenantry-web-<pid>`). Called
    in each web process before its pools are created (gunicorn's post_worker_init: its thread
    count is known there, whether it came from the environment or the command line)."""
    for alias in settings.POOLED_ALIASES:
        options = connections.settings[alias]["OPTIONS"]
        options["pool"].update(min_size=threads, max_size=threads)
        options["application_name"] = f"tenantry-web-{os.getpid()}"


def pools_fill() -> None:
    """Open the pools and wait until each holds all its connections, every one of which has
    run the request path's first statements: the first request opens no connection, and the
    server process behind each has already read the catalog entries of the tables a request
    touches (a fresh backend's first statements are slower)."""
    tables = ", ".join(model._meta.db_table for model in (TenantQuota, RequestCounter, UsageRecord))
    statements = [
        (key_lookup_sql(), ["tnt_warm"]),
        (f"SELECT 1 FROM {tables} LIMIT 0", None),  # noqa: S608 - model table names
    ]
    for alias in settings.POOLED_ALIASES:
        pool = connections[alias].pool
        pool.open(wait=True, timeout=max(settings.DB_CONNECT_TIMEOUT_SECONDS, 1) * 2)
        taken = [pool.getconn() for _ in range(pool.max_size)]
        try:
            for conn in taken:
                for sql, params in statements:
                    conn.execute(sql, params).fetchall()
        finally:
            for conn in taken:
                pool.putconn(conn)

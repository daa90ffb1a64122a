"""Test-only tasks the test worker imports (`--include tests.celery_probe`): they report the
state a task finds its database connection in, and fail inside a binding on request.

Why: a binding must not outlive its task on a worker that keeps its connections; only a task
running in that worker process can see the connection as the next task gets it.
"""

from __future__ import annotations

import json
from pathlib import Path

from celery import shared_task


@shared_task
def connection_state(path: str, fresh: bool = False) -> None:
    """Write the connection's `app.tenant_id`, `search_path` and the binding to `path`.

    `fresh`: open a new connection first, so it cannot reach DB_CONN_MAX_AGE (and be replaced
    between tasks) during the test that follows."""
    from django.db import connections

    from tenants.context import current_binding

    if fresh:
        connections["default"].close()

    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(current_setting('app.tenant_id', true), ''), "
            "current_setting('search_path'), pg_backend_pid()"
        )
        tenant_id, search_path, pid = cursor.fetchone()
    state = {
        "tenant_id": tenant_id,
        "search_path": search_path,
        "backend_pid": pid,
        "binding": repr(current_binding()) if current_binding() else None,
    }
    Path(path).write_text(json.dumps(state))


@shared_task
def fail_inside_binding(tenant_id: str) -> None:
    """Bind the tenant, query, then raise: the task fails with its transaction open."""
    from django.db import connections

    from tenants.context import data_alias, tenant_context
    from tenants.models import Tenant

    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        with connections[data_alias()].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM rag_document")
        raise RuntimeError("failed inside a binding, on purpose")

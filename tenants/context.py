"""The tenant context: the one way to reach a tenant's data plane.

`tenant_context(tenant)` opens a transaction on the tenant's alias and sets, with `SET LOCAL`
semantics only (`set_config(..., true)`), `app.tenant_id` and `search_path`. Nothing survives
the transaction, so a pooled connection never carries a tenant into the next request. Outside a
context the router sends data-plane queries to the shared pool tables with `app.tenant_id`
unset, where the row-level security policy matches no row: forgetting to bind sees nothing.

API authentication, middleware, Celery tasks, management commands and console views all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from django.db import connections, transaction

from . import placement
from .models import Tenant


@dataclass(frozen=True)
class Binding:
    tenant_id: UUID
    alias: str


_binding: ContextVar[Binding | None] = ContextVar("tenantry_binding", default=None)


def current_binding() -> Binding | None:
    return _binding.get()


def data_alias() -> str:
    """The alias data-plane queries go to now: the bound tenant's, else the fail-closed pool."""
    binding = _binding.get()
    return binding.alias if binding else "default"


@contextmanager
def tenant_context(tenant: Tenant) -> Iterator[Tenant]:
    """Bind `tenant` for one transaction. Nested contexts restore the outer binding on exit."""
    alias = placement.alias_for(tenant)
    token = _binding.set(Binding(tenant_id=tenant.id, alias=alias))
    try:
        connection = connections[alias]
        nested = connection.in_atomic_block
        with transaction.atomic(using=alias):
            with connection.cursor() as cursor:
                if nested:
                    cursor.execute(
                        "SELECT current_setting('app.tenant_id', true), "
                        "current_setting('search_path')"
                    )
                    previous = cursor.fetchone()
                _set(cursor, str(tenant.id), placement.search_path_for(tenant))
            yield tenant
            if nested:
                # SET LOCAL lasts until the *outer* transaction ends: put the outer values back.
                with connection.cursor() as cursor:
                    _set(cursor, previous[0] or "", previous[1])
    finally:
        _binding.reset(token)


def _set(cursor, tenant_id: str, search_path: str) -> None:
    cursor.execute(
        "SELECT set_config('app.tenant_id', %s, true), set_config('search_path', %s, true)",
        [tenant_id, search_path],
    )

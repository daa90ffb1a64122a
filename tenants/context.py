"""The tenant context: the one way to reach a tenant's data plane.

`tenant_context(tenant)` opens a transaction on the tenant's alias and sets, with `SET LOCAL`
semantics only (`set_config(..., true)`), `app.tenant_id` and `search_path`. Nothing survives
the transaction, so a pooled connection never carries a tenant into the next request. Outside a
context the router sends data-plane queries to the shared pool tables with `app.tenant_id`
unset, where the row-level security policy matches no row: forgetting to bind sees nothing.
The router does not even get that far: a data-plane query outside a context raises
`TenantNotBound`, naming the model, so a forgotten binding is a loud bug rather than an empty
tenant. `dangerously_unbound()` is the named escape hatch for the rare code that must reach the
fail-closed pool tables with no tenant (tests that prove the fail-closed default, audits).

Bind per unit of work: each service binds for its own short transaction, never across a model
generating or a response streaming (see docs/architecture.md). API authentication resolves the
tenant; services, Celery tasks, management commands and console views bind it.
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


class TenantNotBound(RuntimeError):
    """A data-plane query ran outside any tenant binding: a bug in the caller."""


_binding: ContextVar[Binding | None] = ContextVar("tenantry_binding", default=None)
_unbound_allowed: ContextVar[bool] = ContextVar("tenantry_unbound_allowed", default=False)


def current_binding() -> Binding | None:
    return _binding.get()


def data_alias(model=None) -> str:
    """The alias data-plane queries go to now: the bound tenant's.

    Outside a binding it raises TenantNotBound (naming `model` when given), unless the caller
    is inside `dangerously_unbound()`, which gets the fail-closed pool tables (no row visible).
    """
    binding = _binding.get()
    if binding is not None:
        return binding.alias
    if _unbound_allowed.get():
        return "default"
    what = f"{model._meta.label} " if model is not None else ""
    raise TenantNotBound(
        f"Data-plane query {what}outside a tenant binding: call a service or selector that "
        "takes tenant=, or wrap the query in tenant_context(tenant)."
    )


@contextmanager
def dangerously_unbound() -> Iterator[None]:
    """Let data-plane queries run with no tenant bound; row-level security then shows none.

    Only for code whose point is the unbound state: proving it fails closed, auditing it.
    """
    token = _unbound_allowed.set(True)
    try:
        yield
    finally:
        _unbound_allowed.reset(token)


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

"""Tenant lifecycle: create (with its placement), suspend, resume, delete.

DDL runs as the owner role; the app role never creates or drops anything.
"""

from __future__ import annotations

import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import connections, transaction
from psycopg import sql

from .. import placement
from ..context import tenant_context
from ..models import ACTIVE_MOVE_STATES, IsolationMode, Tenant, TenantMove, TenantStatus
from ..planes import data_plane
from .databases import database_create, database_drop
from .dataplane import dataplane_migrate
from .servers import server_for_new_tenant

logger = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """Creating a tenant's placement failed; nothing of the tenant is left behind."""


def tenant_create(
    *, slug: str, mode: str, name: str = "", silo_dsn: str = "", server: str | None = None
) -> Tenant:
    """Create a tenant and its schema or database, migrated to the current data plane.

    `server` names a registered server; without one (and without `silo_dsn`) the placement
    rule of tenants.services.servers chooses (settings.TENANT_PLACEMENT).
    """
    if silo_dsn and mode != IsolationMode.SILO:
        raise ValidationError({"silo_dsn": "A DSN only applies to silo tenants."})
    if silo_dsn and server:
        raise ValidationError({"server": "Give a registered server or a DSN, not both."})
    data_server = None if silo_dsn else server_for_new_tenant(name=server)
    tenant_id = uuid.uuid4()
    tenant = Tenant(
        id=tenant_id,
        slug=slug,
        name=name or slug,
        isolation_mode=mode,
        status=TenantStatus.PROVISIONING,
        silo_database=f"tenant_{tenant_id.hex}" if mode == IsolationMode.SILO else "",
        silo_dsn=silo_dsn,
        server=data_server,
    )
    tenant.full_clean()
    tenant.save(force_insert=True)
    try:
        placement_create(tenant)
        dataplane_migrate(tenant=tenant)
    except Exception as exc:
        try:
            placement_drop(tenant)
        except Exception:  # the server may be unreachable: that is usually why we are here
            logger.warning("Could not clean up the placement of %s", slug, exc_info=True)
        tenant.delete()
        raise ProvisioningError(f"Could not provision {mode} tenant {slug!r}: {exc}") from exc
    tenant.status = TenantStatus.ACTIVE
    tenant.save(update_fields=["status", "updated_at"])
    return tenant


class TenantNotActive(Exception):
    """The tenant is suspended (or not yet provisioned): it gets no service."""

    code = "tenant_suspended"

    def __init__(self, tenant: Tenant):
        super().__init__(f"Tenant {tenant.slug!r} is {tenant.status}.")


def tenant_require_active(*, tenant: Tenant) -> None:
    """The one rule on what a suspended tenant may do, applied by the services themselves so
    that the API, the console and the commands agree.

    A suspended tenant keeps its data and gets no service: no upload, search or answer, from
    any interface (the API refuses all of its calls even earlier, 403 `tenant_suspended`).
    Operators may still look at it from the console and the commands (documents, chunks, query
    log, usage, evaluation results), delete its documents, change its keys and quotas, resume
    or delete it; retention still prunes its data.
    """
    if not tenant.is_active:
        raise TenantNotActive(tenant)


def tenant_suspend(*, tenant: Tenant) -> Tenant:
    """Refuse the tenant's API calls from now on; its data stays."""
    return _set_status(tenant, TenantStatus.SUSPENDED)


def tenant_resume(*, tenant: Tenant) -> Tenant:
    return _set_status(tenant, TenantStatus.ACTIVE)


def tenant_delete(*, tenant: Tenant) -> None:
    """Remove all of the tenant's data in its placement, then the tenant and its keys.

    An unfinished move is abandoned first: its other end (and its change capture) would
    otherwise outlive the tenant.
    """
    from .moves.protocol import move_abandon  # moves build on this module

    for move in TenantMove.objects.filter(tenant=tenant, state__in=ACTIVE_MOVE_STATES):
        move_abandon(move)
    if tenant.isolation_mode == IsolationMode.POOL:
        pool_rows_delete(tenant)
    placement_drop(tenant)
    with transaction.atomic():
        # Lock the tenant row first: a worker or request still metering this tenant (a ledger
        # row, a rate counter) then waits for the delete and fails its own insert, instead of
        # committing a row between the cascade's DELETEs and breaking the delete's FK check.
        list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk"))
        tenant.delete()


def _set_status(tenant: Tenant, status: str) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(status=status)
    tenant.refresh_from_db()
    return tenant


def pool_rows_delete(tenant: Tenant) -> None:
    """Delete the tenant's rows from the pool tables of its server."""
    # Children first; row-level security limits each DELETE to the bound tenant.
    with tenant_context(tenant), connections[placement.alias_for(tenant)].cursor() as cursor:
        # Lock the documents first: a worker still ingesting one either commits its chunks
        # before this (and they are deleted below) or waits and then finds its document gone.
        # Without the lock its chunks could land between the two DELETEs and break the FK.
        data_plane().lock_pool_rows(cursor, tenant.id)
        for model in reversed(list(data_plane().get_models())):
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s")
                .format(sql.Identifier(model._meta.db_table))
                .as_string(cursor.connection),
                [tenant.id],
            )


def placement_create(tenant: Tenant) -> None:
    """Create the tenant's bridge schema or silo database (nothing for the pool)."""
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        alias = placement.shared_owner_alias(tenant)
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE SCHEMA {}")
                .format(sql.Identifier(tenant.schema_name))
                .as_string(cursor.connection)
            )
    elif tenant.isolation_mode == IsolationMode.SILO:
        database_create(placement.server_owner_settings(tenant), tenant.silo_database)


def placement_drop(tenant: Tenant) -> None:
    """Drop the tenant's bridge schema or silo database, if there (pool rows: pool_rows_delete)."""
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        with connections[placement.shared_owner_alias(tenant)].cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                .format(sql.Identifier(tenant.schema_name))
                .as_string(cursor.connection)
            )
    elif tenant.isolation_mode == IsolationMode.SILO:
        placement.forget(tenant)
        database_drop(placement.server_owner_settings(tenant), tenant.silo_database)
    placement.forget(tenant)

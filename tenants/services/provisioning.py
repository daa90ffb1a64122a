"""Tenant lifecycle: create (with its placement), suspend, resume, delete.

DDL runs as the owner role; the app role never creates or drops anything.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from psycopg import sql

from .. import placement
from ..context import tenant_context
from ..models import IsolationMode, Tenant, TenantStatus
from ..planes import data_plane
from .dataplane import dataplane_migrate

logger = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """Creating a tenant's placement failed; nothing of the tenant is left behind."""


def tenant_create(*, slug: str, mode: str, name: str = "", silo_dsn: str = "") -> Tenant:
    """Create a tenant and its schema or database, migrated to the current data plane."""
    if silo_dsn and mode != IsolationMode.SILO:
        raise ValidationError({"silo_dsn": "A DSN only applies to silo tenants."})
    tenant_id = uuid.uuid4()
    tenant = Tenant(
        id=tenant_id,
        slug=slug,
        name=name or slug,
        isolation_mode=mode,
        status=TenantStatus.PROVISIONING,
        silo_database=f"tenant_{tenant_id.hex}" if mode == IsolationMode.SILO else "",
        silo_dsn=silo_dsn,
    )
    tenant.full_clean()
    tenant.save(force_insert=True)
    try:
        _create_placement(tenant)
        dataplane_migrate(tenant=tenant)
    except Exception as exc:
        try:
            _drop_placement(tenant)
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
    """Remove all of the tenant's data in its placement, then the tenant and its keys."""
    if tenant.isolation_mode == IsolationMode.POOL:
        _delete_pool_rows(tenant)
    _drop_placement(tenant)
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


def _delete_pool_rows(tenant: Tenant) -> None:
    # Children first; row-level security limits each DELETE to the bound tenant.
    with tenant_context(tenant), connections["default"].cursor() as cursor:
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


def _create_placement(tenant: Tenant) -> None:
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE SCHEMA {}")
                .format(sql.Identifier(tenant.schema_name))
                .as_string(cursor.connection)
            )
    elif tenant.isolation_mode == IsolationMode.SILO:
        database = sql.Identifier(tenant.silo_database)
        with _server_connection(tenant) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    database, sql.Identifier(settings.SILO_TEMPLATE_DB)
                )
            )
            # Only the app role may connect; TEMPORARY for the COPY staging table.
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            conn.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    database, sql.Identifier(placement.app_role())
                )
            )


def _drop_placement(tenant: Tenant) -> None:
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        with connections["owner"].cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                .format(sql.Identifier(tenant.schema_name))
                .as_string(cursor.connection)
            )
    elif tenant.isolation_mode == IsolationMode.SILO:
        placement.forget(tenant)
        with _server_connection(tenant) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(tenant.silo_database)
                )
            )
    placement.forget(tenant)


def _server_connection(tenant: Tenant) -> psycopg.Connection:
    """An autocommit owner connection to the silo's server (CREATE/DROP DATABASE need one)."""
    cfg = placement.server_owner_settings(tenant)
    params = {
        "dbname": cfg["NAME"],
        "user": cfg["USER"],
        "password": cfg["PASSWORD"],
        "host": cfg["HOST"] or None,
        "port": cfg["PORT"] or None,
        **cfg.get("OPTIONS", {}),
    }
    return psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if v})

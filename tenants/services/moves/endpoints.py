"""The two ends of a move as placements: settings, raw connections, and the DDL around them.

A move's source and target are described by Tenant objects that are never saved (copies of
the tenant with the placement fields of one end, tenants.placement resolves them like any
tenant), so every rule of where a placement lives is the one the platform serves from.
"""

from __future__ import annotations

import copy

import psycopg
from django.db import connections

from ... import pgconnect, placement
from ...models import IsolationMode, Tenant, TenantMove

APPLICATION_NAME = "tenantry tenant_move"


def source_of(move: TenantMove) -> Tenant:
    tenant = copy.copy(move.tenant)
    tenant.isolation_mode = move.source_mode
    tenant.server = move.source_server
    tenant.silo_database = move.source_database
    tenant.silo_dsn = move.source_dsn
    tenant.placement_version = move.source_version
    return tenant


def target_of(move: TenantMove) -> Tenant:
    tenant = copy.copy(move.tenant)
    tenant.isolation_mode = move.target_mode
    tenant.server = move.target_server
    tenant.silo_database = move.target_database
    tenant.silo_dsn = ""
    tenant.placement_version = move.source_version + 1
    return tenant


def schema_of(end: Tenant) -> str:
    return end.schema_name if end.isolation_mode == IsolationMode.BRIDGE else "public"


def shares_tables(end: Tenant) -> bool:
    """Pool tables hold other tenants' rows: nothing there may be dropped or rebuilt."""
    return end.isolation_mode == IsolationMode.POOL


def owner_settings(end: Tenant) -> dict:
    return dict(connections.settings[placement.owner_alias_for(end)])


def connect(end: Tenant, *, bind: bool = True) -> psycopg.Connection:
    """An autocommit owner connection to the placement, bound to the tenant for the whole
    session (row-level security is forced on the owner too, so it sees the tenant's rows and
    no other's), with the placement's search_path and no statement timeout (a copy is long)."""
    conn = pgconnect.connect(owner_settings(end), application_name=APPLICATION_NAME)
    conn.execute(
        "SELECT set_config('search_path', %s, false), set_config('statement_timeout', '0', false)",
        [placement.search_path_for(end)],
    )
    if bind:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(end.id)])
    return conn


def same_database(a: Tenant, b: Tenant) -> bool:
    sa, sb = owner_settings(a), owner_settings(b)
    key = ("HOST", "PORT", "NAME")
    opts = ("host", "port")
    return all(sa.get(k) == sb.get(k) for k in key) and all(
        sa.get("OPTIONS", {}).get(o) == sb.get("OPTIONS", {}).get(o) for o in opts
    )


def describe(end: Tenant) -> str:
    return f"{end.isolation_mode}@{end.server_name}"

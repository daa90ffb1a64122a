"""Where a tenant's data-plane tables live, as Django database aliases and a search_path.

A placement is a server plus a mode. On the platform database's server (no `tenant.server`):

pool   -> alias `default`, search_path `public` (shared tables, row-level security)
bridge -> alias `default`, search_path `tenant_<id>, public` (own schema, RLS too)
silo   -> alias `silo_<id>_<version>` registered here at run time (own database, RLS too)

On a registered server (tenants.models.DataServer) pool and bridge tenants use the server's
data-plane database through `server_<server id>`; silos are databases on that server.

Aliases for migrating a schema or a silo database as the owner are registered here as well;
the router lets only data-plane apps migrate on them. A tenant's own aliases carry its
placement version: a move bumps it, so a process never reuses settings (or a connection)
made for the placement the tenant has left.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, unquote, urlsplit

from django.conf import settings
from django.db import connections

from .models import IsolationMode, Tenant

SILO_PREFIX = "silo_"
OWNER_PREFIX = "owner_"
SERVER_PREFIX = "server_"
_lock = threading.Lock()


def is_tenant_alias(alias: str) -> bool:
    return alias.startswith((SILO_PREFIX, OWNER_PREFIX, SERVER_PREFIX))


def search_path_for(tenant: Tenant) -> str:
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        return f"{tenant.schema_name}, public"
    return "public"


def alias_for(tenant: Tenant) -> str:
    """The alias the app role uses for this tenant's data plane (registered if needed)."""
    if tenant.isolation_mode != IsolationMode.SILO:
        return server_alias(tenant.server) if tenant.server_id else "default"
    alias = f"{SILO_PREFIX}{tenant.id.hex}_{tenant.placement_version}"
    _register(alias, lambda: _silo_settings(tenant, as_owner=False))
    return alias


def owner_alias_for(tenant: Tenant) -> str:
    """An owner-role alias pointing at the tenant's data plane, for migrations and DDL."""
    alias = f"{OWNER_PREFIX}{tenant.id.hex}_{tenant.placement_version}"
    if tenant.isolation_mode == IsolationMode.SILO:
        _register(alias, lambda: _silo_settings(tenant, as_owner=True))
    elif tenant.isolation_mode == IsolationMode.BRIDGE:
        _register(alias, lambda: _with_search_path(_shared(tenant, True), tenant.schema_name))
    else:
        return server_owner_alias(tenant.server) if tenant.server_id else "owner"
    return alias


def server_alias(server) -> str:
    """The app-role alias of a registered server's data-plane database (pool and bridge)."""
    alias = f"{SERVER_PREFIX}{server.pk}"
    _register(alias, lambda: server_settings(server, as_owner=False))
    return alias


def server_owner_alias(server) -> str:
    """The owner-role alias of a registered server's data-plane database (its migrations)."""
    alias = f"{OWNER_PREFIX}{SERVER_PREFIX}{server.pk}"
    _register(alias, lambda: server_settings(server, as_owner=True))
    return alias


def server_settings(server, *, as_owner: bool) -> dict:
    """Django settings for a registered server's data-plane database: the DSN's host, port and
    database; its role for the owner, the platform's app role (same password) for the app."""
    cfg = _copy("owner" if as_owner else "default")
    _point_at(cfg, server.dsn, as_owner=as_owner)
    cfg["NAME"] = dsn_parts(server.dsn)["NAME"]
    return cfg


def server_owner_settings(tenant: Tenant) -> dict:
    """Owner settings for the silo's *server* maintenance database (to CREATE/DROP DATABASE)."""
    cfg = _silo_settings(tenant, as_owner=True)
    if tenant.server_id:
        cfg["NAME"] = dsn_parts(tenant.server.dsn)["NAME"]
    elif tenant.silo_dsn:
        cfg["NAME"] = dsn_parts(tenant.silo_dsn)["NAME"]
    else:
        cfg["NAME"] = _copy("owner")["NAME"]
    return cfg


def shared_owner_alias(tenant: Tenant) -> str:
    """The owner alias of the database holding the tenant's server's pool tables and bridge
    schemas (where a bridge schema is created and dropped)."""
    return server_owner_alias(tenant.server) if tenant.server_id else "owner"


def shared_owner_settings(tenant: Tenant) -> dict:
    """Owner settings for the database holding the tenant's server's pool tables and bridge
    schemas (the platform database, or a registered server's data-plane database)."""
    return _shared(tenant, True)


def forget(tenant: Tenant) -> None:
    """Close and unregister the tenant's aliases in this process (after delete)."""
    for alias in _own_aliases(tenant):
        with _lock:
            if alias in connections.settings:
                connections[alias].close()
                del connections.settings[alias]


def release(tenant: Tenant) -> None:
    """Close this thread's connections to the tenant's own aliases (its silo database, its
    owner alias), unless a transaction is open on them.

    Why: a loop over every tenant (the periodic sweeps, the console overview, migrate_tenants)
    would otherwise hold a connection per silo database at once, and the number of silos grows
    with the platform while PostgreSQL's max_connections does not. Pool and bridge tenants use
    `default`, which stays open.
    """
    for alias in _own_aliases(tenant):
        if alias in connections.settings and not connections[alias].in_atomic_block:
            connections[alias].close()


def _own_aliases(tenant: Tenant) -> list[str]:
    """Every alias registered in this process for the tenant, of any placement version."""
    prefixes = (f"{SILO_PREFIX}{tenant.id.hex}_", f"{OWNER_PREFIX}{tenant.id.hex}_")
    return [alias for alias in list(connections.settings) if alias.startswith(prefixes)]


def _register(alias: str, build) -> None:
    if alias in connections.settings:
        return
    with _lock:
        if alias not in connections.settings:
            connections.settings[alias] = build()


def _copy(alias: str) -> dict:
    cfg = dict(connections.settings[alias])
    cfg["OPTIONS"] = dict(cfg.get("OPTIONS", {}))
    cfg["TEST"] = dict(cfg.get("TEST", {}))
    # A web process's pool (DB_POOL) is the platform alias's own: an alias built from it (a
    # registered server's, a silo's) keeps its connections as the alias would unpooled.
    if cfg["OPTIONS"].pop("pool", None) is not None:
        cfg["CONN_MAX_AGE"] = settings.DB_CONN_MAX_AGE
    return cfg


def _with_search_path(cfg: dict, schema: str) -> dict:
    # Migrations of a bridge schema see only that schema first, then public for pgvector.
    cfg["OPTIONS"]["options"] = f"-c search_path={schema},public"
    return cfg


def _shared(tenant: Tenant, as_owner: bool) -> dict:
    if tenant.server_id:
        return server_settings(tenant.server, as_owner=as_owner)
    return _copy("owner" if as_owner else "default")


def _point_at(cfg: dict, dsn: str, *, as_owner: bool) -> None:
    remote = dsn_parts(dsn)
    cfg.update(HOST=remote["HOST"], PORT=remote["PORT"])
    if as_owner:
        cfg.update(USER=remote["USER"], PASSWORD=remote["PASSWORD"])
    cfg["OPTIONS"].pop("host", None)
    cfg["OPTIONS"].pop("port", None)
    cfg["OPTIONS"].update(remote["OPTIONS"])


def _silo_settings(tenant: Tenant, *, as_owner: bool) -> dict:
    cfg = _copy("owner" if as_owner else "default")
    if tenant.server_id:
        _point_at(cfg, tenant.server.dsn, as_owner=as_owner)
    elif tenant.silo_dsn:
        _point_at(cfg, tenant.silo_dsn, as_owner=as_owner)
    cfg["NAME"] = tenant.silo_database
    # Not kept past the request or task that opened it (settings.SILO_CONN_MAX_AGE says why).
    cfg["CONN_MAX_AGE"] = settings.SILO_CONN_MAX_AGE
    return cfg


def dsn_parts(dsn: str) -> dict:
    """Split a postgresql:// DSN (TCP or `?host=/socket/dir`) into Django settings keys."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    options = {k: v for k, v in query.items() if k in {"host", "port", "sslmode"}}
    return {
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "NAME": parts.path.lstrip("/") or "postgres",
        "OPTIONS": options,
    }


def app_role() -> str:
    return settings.DATABASES["default"]["USER"]

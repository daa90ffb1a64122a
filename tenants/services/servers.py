"""The registry of data-plane PostgreSQL servers, and where a new tenant goes.

A registered server holds pool tables and bridge schemas in one data-plane database (the one
its DSN names, created here from the silo template when missing) and silos as databases of
their own. The platform database is the default server and is never registered. The server
must have the platform's app role with the same password, and pgvector in its silo template,
as for a silo on another server today (README, "On several machines").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import Count

from .. import placement
from ..models import DEFAULT_SERVER_NAME, DataServer, Tenant
from ..planes import data_plane
from ..sweep import each_tenant
from .databases import database_create, database_drop, database_exists


class ServerError(Exception):
    """A server could not be added or removed; nothing was registered or removed."""


@dataclass
class ServerLoad:
    """One line of `server_list`: a server, its tenants by mode, and what they store there."""

    name: str
    where: str
    tenants: dict = field(default_factory=dict)
    chunks: int = 0
    bytes: int = 0
    unreachable: list = field(default_factory=list)

    @property
    def tenant_count(self) -> int:
        return sum(self.tenants.values())


def server_add(*, name: str, dsn: str) -> DataServer:
    """Register a server: create its data-plane database if missing, migrate the pool tables
    into it and check that the app role can reach it. Registered only if all of that worked."""
    if name == DEFAULT_SERVER_NAME:
        raise ValidationError({"name": f"{DEFAULT_SERVER_NAME!r} is the platform database."})
    server = DataServer(name=name, dsn=dsn)
    server.full_clean()
    created = False
    try:
        created = _ensure_database(server)
        with transaction.atomic():
            server.save(force_insert=True)
            server_migrate(server=server)
            _check_app_role(server)
    except Exception as exc:
        _forget(server)
        if created:
            _drop_database(server)
        if isinstance(exc, ValidationError):
            raise
        raise ServerError(f"Could not add server {name!r}: {exc}") from exc
    return server


def server_migrate(*, server: DataServer) -> list[str]:
    """Bring the server's pool tables to the current data plane; returns what was applied."""
    from .dataplane import migrate_alias

    return migrate_alias(placement.server_owner_alias(server), schema="public")


def server_remove(*, name: str) -> None:
    """Unregister a server that holds no tenant and is no move's source or target. Its
    database is left on the server for the operator to drop."""
    server = server_get(name=name)
    from ..models import TenantMove

    if server.tenants.exists():
        slugs = ", ".join(server.tenants.values_list("slug", flat=True)[:10])
        raise ServerError(f"Server {name!r} still holds tenants ({slugs}); move them first.")
    moving = TenantMove.objects.filter(state__in=["running", "kept"])
    if moving.filter(target_server=server).exists() or moving.filter(source_server=server).exists():
        raise ServerError(f"A move to or from {name!r} is not finished.")
    _forget(server)
    server.delete()


def server_get(*, name: str) -> DataServer:
    found = DataServer.objects.filter(name=name).first()
    if found is None:
        raise ServerError(f"No server named {name!r} (see manage.py server_list).")
    return found


def server_resolve(name: str | None) -> DataServer | None:
    """A server by name, None for the platform database ("default" or no name)."""
    if not name or name == DEFAULT_SERVER_NAME:
        return None
    return server_get(name=name)


def server_for_new_tenant(*, name: str | None = None) -> DataServer | None:
    """Where a new tenant goes (None: the platform database).

    The rule: a server named by the caller; else settings.TENANT_PLACEMENT, which is
    `default` (the platform database, the default), a server's name, or `least-loaded`: the
    server, the platform database included, with the fewest tenants (ties: the platform
    database, then by name). Tenants, not bytes: the count is the control plane's own, exact
    and free, where bytes would mean asking every server at every sign-up.
    """
    if name:
        return server_resolve(name)
    rule = settings.TENANT_PLACEMENT
    if rule == "least-loaded":
        counts = {
            s.pk: s.n for s in DataServer.objects.annotate(n=Count("tenants")).order_by("name")
        }
        on_default = Tenant.objects.filter(server__isnull=True).count()
        best = min(counts.items(), key=lambda item: item[1], default=(None, on_default))
        if best[0] is None or best[1] >= on_default:
            return None
        return DataServer.objects.get(pk=best[0])
    return server_resolve(rule)


def server_list(*, measure: bool = True) -> list[ServerLoad]:
    """Every server with its tenants by mode and, with `measure`, the chunks and bytes they
    store (each tenant counted in its own binding; an unreachable one is named, not fatal)."""
    loads = {None: ServerLoad(name=DEFAULT_SERVER_NAME, where=_where(None))}
    for server in DataServer.objects.all():
        loads[server.pk] = ServerLoad(name=server.name, where=_where(server))
    tenants = list(Tenant.objects.select_related("server").order_by("slug"))
    for tenant in tenants:
        load = loads[tenant.server_id] if not tenant.silo_dsn else _dsn_load(loads, tenant)
        load.tenants[tenant.isolation_mode] = load.tenants.get(tenant.isolation_mode, 0) + 1
    if measure:
        for tenant, outcome in each_tenant(tenants, lambda t: data_plane().stored(chunks=True)):
            load = loads[tenant.server_id] if not tenant.silo_dsn else _dsn_load(loads, tenant)
            if not outcome.ok:
                load.unreachable.append(tenant.slug)
                continue
            load.chunks += outcome.value.chunks
            load.bytes += outcome.value.bytes
    return list(loads.values())


def _dsn_load(loads: dict, tenant: Tenant) -> ServerLoad:
    # A silo given by DSN (the older way) is on a server of its own, unregistered.
    parts = placement.dsn_parts(tenant.silo_dsn)
    key = ("dsn", parts["HOST"], parts["PORT"], parts["OPTIONS"].get("host", ""))
    if key not in loads:
        host = parts["HOST"] or parts["OPTIONS"].get("host", "")
        loads[key] = ServerLoad(name="(by dsn)", where=f"{host}:{parts['PORT'] or 5432}")
    return loads[key]


def _where(server: DataServer | None) -> str:
    cfg = connections.settings["owner"] if server is None else placement.dsn_parts(server.dsn)
    options = cfg.get("OPTIONS", {})
    host = cfg.get("HOST") or options.get("host", "") or "localhost"
    return f"{host}:{cfg.get('PORT') or options.get('port') or 5432}/{cfg['NAME']}"


def _maintenance_settings(server: DataServer) -> dict:
    cfg = placement.server_settings(server, as_owner=True)
    cfg["NAME"] = "postgres"
    return cfg


def _ensure_database(server: DataServer) -> bool:
    """Create the server's data-plane database if it does not exist; True if created here."""
    database = placement.dsn_parts(server.dsn)["NAME"]
    if database_exists(_maintenance_settings(server), database):
        return False
    database_create(_maintenance_settings(server), database)
    return True


def _drop_database(server: DataServer) -> None:
    # The server is usually what failed; the operator sees the error raised by the caller.
    with contextlib.suppress(psycopg.Error):
        database_drop(_maintenance_settings(server), placement.dsn_parts(server.dsn)["NAME"])


def _check_app_role(server: DataServer) -> None:
    """Open the app role's connection once: tenants/roles.py refuses an unsafe role there."""
    alias = placement.server_alias(server)
    connections[alias].ensure_connection()
    connections[alias].close()


def _forget(server: DataServer) -> None:
    if server.pk is None:
        return
    for alias in (f"server_{server.pk}", f"owner_server_{server.pk}"):
        if alias in connections.settings:
            connections[alias].close()
            del connections.settings[alias]

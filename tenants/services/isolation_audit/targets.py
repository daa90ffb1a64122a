"""Which placements the audit visits, which tables it expects there, and how it connects.

Connections are raw psycopg, not Django aliases, on purpose: tenants/roles.py refuses every new
app-role Django connection when the role is a superuser or has BYPASSRLS, which is exactly when
the audit must keep going and report it; and the audit decides itself when each connection
closes (a silo's as soon as it is audited). Settings still come from tenants.placement, so the
audit reaches each placement the way the platform does.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections

from ... import pgconnect, placement
from ...models import DataServer, IsolationMode, Tenant, TenantStatus
from ...planes import data_plane

APPLICATION_NAME = "tenantry check_isolation"


@dataclass(frozen=True)
class Target:
    """One placement to audit.

    `subject` is the tenant the probes bind: the placement's own tenant for bridge and silo;
    for the pool, the tenant of `--tenant`, or else the first pool tenant by slug (one policy
    per table serves every pool tenant, so one bound tenant shows whether it filters).
    `object_schemas` are searched for functions and views; None means every schema of the
    database except the system ones and `excluded_schemas`.
    """

    label: str
    mode: str
    subject: Tenant | None
    database: str
    schema: str
    owner: dict
    app: dict
    object_schemas: tuple[str, ...] | None
    excluded_schemas: tuple[str, ...] = ()
    # A registered data-plane server's name; "" for the platform database's server.
    server: str = ""

    @property
    def shares_platform_database(self) -> bool:
        return self.mode != IsolationMode.SILO and not self.server


def dataplane_tables() -> list[str]:
    """Every table of the data-plane app, M2M through tables included, from the app registry
    (so a table added by a future migration is audited without touching the audit)."""
    tables = set()
    config = data_plane()
    for model in config.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        tables.add(model._meta.db_table)
        for m2m in model._meta.local_many_to_many:
            tables.add(m2m.remote_field.through._meta.db_table)
    return sorted(tables)


def audit_targets(*, tenant: Tenant | None = None) -> tuple[list[Target], list[dict]]:
    """The placements to audit (all, or `tenant`'s alone) and the tenants skipped, with why.

    Tenants are read as the owner role: the app role's connection refuses to open when the role
    is unsafe, and the audit must still run then.
    """
    everyone = list(Tenant.objects.using("owner").select_related("server").order_by("slug"))
    if tenant is not None:
        return [_target(tenant, _bridges(everyone, tenant.server_id))], []
    ready = [t for t in everyone if t.status != TenantStatus.PROVISIONING]
    skipped = [
        {"tenant": t.slug, "reason": "still provisioning: its placement may be half made"}
        for t in everyone
        if t.status == TenantStatus.PROVISIONING
    ]
    # Every server's pool tables: the platform database's, and each registered server's.
    targets = []
    for server in [None, *DataServer.objects.using("owner").order_by("name")]:
        server_id = server.pk if server else None
        pool = [t for t in ready if t.isolation_mode == "pool" and t.server_id == server_id]
        subject = pool[0] if pool else None
        targets.append(_pool_target(subject, _bridges(everyone, server_id), server))
    targets += [
        _target(t, _bridges(everyone, t.server_id)) for t in ready if t.isolation_mode != "pool"
    ]
    return targets, skipped


def _bridges(everyone: list[Tenant], server_id) -> tuple[str, ...]:
    return tuple(
        t.schema_name for t in everyone if t.isolation_mode == "bridge" and t.server_id == server_id
    )


def _shared(server) -> tuple[dict, dict]:
    """Owner and app settings of a server's shared data-plane database (None: the platform's)."""
    if server is None:
        return connections.settings["owner"], connections.settings["default"]
    return (
        placement.server_settings(server, as_owner=True),
        placement.server_settings(server, as_owner=False),
    )


def _target(tenant: Tenant, bridge_schemas: tuple[str, ...]) -> Target:
    if tenant.isolation_mode == IsolationMode.POOL:
        return _pool_target(tenant, bridge_schemas, tenant.server)
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        owner, app = _shared(tenant.server)
        return Target(
            label=f"bridge:{tenant.slug}" + (f"@{tenant.server.name}" if tenant.server else ""),
            mode=IsolationMode.BRIDGE,
            subject=tenant,
            database=owner["NAME"],
            schema=tenant.schema_name,
            owner=connect_params(owner, read_only=True),
            app=connect_params(app),
            object_schemas=(tenant.schema_name,),
            server=tenant.server.name if tenant.server else "",
        )
    owner = connections.settings[placement.owner_alias_for(tenant)]
    app = connections.settings[placement.alias_for(tenant)]
    params = connect_params(app)
    server = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
    return Target(
        label=f"silo:{tenant.slug}@{server}/{tenant.silo_database}",
        mode=IsolationMode.SILO,
        subject=tenant,
        database=tenant.silo_database,
        schema="public",
        owner=connect_params(owner, read_only=True),
        app=params,
        object_schemas=None,
    )


def _pool_target(subject: Tenant | None, bridge_schemas: tuple[str, ...], server=None) -> Target:
    owner, app = _shared(server)
    return Target(
        label="pool" + (f"@{server.name}" if server else ""),
        mode=IsolationMode.POOL,
        subject=subject,
        database=owner["NAME"],
        schema="public",
        owner=connect_params(owner, read_only=True),
        app=connect_params(app),
        # The platform database's shared schemas; each bridge schema is its own placement.
        object_schemas=None,
        excluded_schemas=bridge_schemas,
        server=server.name if server else "",
    )


def connect_params(cfg: dict, *, read_only: bool = False) -> dict:
    """psycopg keyword arguments for a Django database settings dict (tenants.pgconnect)."""
    return pgconnect.connect_params(cfg, application_name=APPLICATION_NAME, read_only=read_only)

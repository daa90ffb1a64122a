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
from ...models import IsolationMode, Tenant, TenantStatus
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

    @property
    def shares_platform_database(self) -> bool:
        return self.mode != IsolationMode.SILO


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
    everyone = list(Tenant.objects.using("owner").order_by("slug"))
    bridge_schemas = tuple(t.schema_name for t in everyone if t.isolation_mode == "bridge")
    if tenant is not None:
        return [_target(tenant, bridge_schemas)], []
    ready = [t for t in everyone if t.status != TenantStatus.PROVISIONING]
    skipped = [
        {"tenant": t.slug, "reason": "still provisioning: its placement may be half made"}
        for t in everyone
        if t.status == TenantStatus.PROVISIONING
    ]
    pool_subject = next((t for t in ready if t.isolation_mode == IsolationMode.POOL), None)
    targets = [_pool_target(pool_subject, bridge_schemas)]
    targets += [_target(t, bridge_schemas) for t in ready if t.isolation_mode != "pool"]
    return targets, skipped


def _target(tenant: Tenant, bridge_schemas: tuple[str, ...]) -> Target:
    if tenant.isolation_mode == IsolationMode.POOL:
        return _pool_target(tenant, bridge_schemas)
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        return Target(
            label=f"bridge:{tenant.slug}",
            mode=IsolationMode.BRIDGE,
            subject=tenant,
            database=connections.settings["owner"]["NAME"],
            schema=tenant.schema_name,
            owner=connect_params(connections.settings["owner"], read_only=True),
            app=connect_params(connections.settings["default"]),
            object_schemas=(tenant.schema_name,),
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


def _pool_target(subject: Tenant | None, bridge_schemas: tuple[str, ...]) -> Target:
    return Target(
        label="pool",
        mode=IsolationMode.POOL,
        subject=subject,
        database=connections.settings["owner"]["NAME"],
        schema="public",
        owner=connect_params(connections.settings["owner"], read_only=True),
        app=connect_params(connections.settings["default"]),
        # The platform database's shared schemas; each bridge schema is its own placement.
        object_schemas=None,
        excluded_schemas=bridge_schemas,
    )


def connect_params(cfg: dict, *, read_only: bool = False) -> dict:
    """psycopg keyword arguments for a Django database settings dict (tenants.pgconnect)."""
    return pgconnect.connect_params(cfg, application_name=APPLICATION_NAME, read_only=read_only)

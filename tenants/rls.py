"""Row-level security for data-plane tables, used by their migrations.

Every data-plane table gets the same fail-closed policy in every placement (pool tables,
bridge schemas and silo databases alike: defence in depth). An unset or empty `app.tenant_id`
makes the comparison NULL, so no row is visible and no row can be written.
"""

from __future__ import annotations

from django.db import migrations, models

CURRENT_TENANT_SQL = "nullif(current_setting('app.tenant_id', true), '')::uuid"


class CurrentTenantId(models.Func):
    """`tenant_id` default: the bound tenant, so inserts cannot name another tenant by accident."""

    template = CURRENT_TENANT_SQL
    output_field = models.UUIDField()

    def __init__(self, **extra):
        super().__init__(**extra)


def enable_rls(table: str) -> migrations.RunSQL:
    policy = (
        f"USING (tenant_id = {CURRENT_TENANT_SQL}) WITH CHECK (tenant_id = {CURRENT_TENANT_SQL})"
    )
    return migrations.RunSQL(
        sql=[
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY tenant_isolation ON {table} {policy}",
        ],
        reverse_sql=[
            f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
            f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ],
    )


class TenantOwnedModel(models.Model):
    """Base for every data-plane model: a `tenant_id` filled from the tenant context."""

    tenant_id = models.UUIDField(db_default=CurrentTenantId(), editable=False, db_index=True)

    class Meta:
        abstract = True

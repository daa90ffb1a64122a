"""Deleting a tenant while something still meters it: the delete wins, cleanly."""

import threading

from django.db import connections

from tenants.models import Tenant, UsageRecord
from tenants.services.provisioning import tenant_delete
from tenants.services.usage import usage_record


def test_a_ledger_insert_racing_a_tenant_delete_cannot_break_it(make_tenant):
    tenant = make_tenant("pool")
    usage_record(tenant=tenant, kind="ingest", requests=1)
    outcome: list[str] = []

    def meter_late():
        # A worker's ledger insert (its own connection) lands after the cascade removed the
        # tenant's ledger rows and before the tenant row itself goes.
        try:
            usage_record(tenant=tenant, kind="search", embedding_tokens=5)
            outcome.append("inserted")
        except Exception:
            outcome.append("refused")
        finally:
            connections.close_all()

    racer = threading.Thread(target=meter_late)

    def between_deletes(execute, sql, params, many, context):
        if sql.startswith('DELETE FROM "tenants_tenant"'):
            racer.start()
            racer.join(timeout=2)  # with the tenant row locked, the insert waits for us
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(between_deletes):
        tenant_delete(tenant=tenant)
    racer.join(timeout=30)
    assert outcome == ["refused"]  # it waited for the delete, then found no tenant
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not UsageRecord.objects.filter(tenant_id=tenant.pk).exists()

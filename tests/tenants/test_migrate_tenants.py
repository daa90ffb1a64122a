"""migrate_tenants brings bridge schemas and silo databases at an older migration up to date."""

import io

import pytest
from django.core.management import call_command
from django.db import connections

from tenants import placement
from tenants.services.dataplane import dataplane_pending


def _roll_back_to_initial(tenant) -> None:
    call_command("migrate", "rag", "0001", database=placement.owner_alias_for(tenant), verbosity=0)


def _tables(tenant) -> set[str]:
    alias = placement.owner_alias_for(tenant)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [tenant.schema_name if tenant.isolation_mode == "bridge" else "public"],
        )
        return {r[0] for r in cursor.fetchall()}


def test_older_schema_and_database_are_brought_up_to_date(make_tenant):
    bridge, silo = make_tenant("bridge"), make_tenant("silo")
    for tenant in (bridge, silo):
        _roll_back_to_initial(tenant)
        assert dataplane_pending(tenant=tenant)[0] == "0002_chunk"
        assert "rag_chunk" not in _tables(tenant)

    out = io.StringIO()
    call_command("migrate_tenants", stdout=out, stderr=io.StringIO())
    report = out.getvalue()
    assert f"{bridge.slug} (bridge): applied 0002_chunk" in report
    assert f"{silo.slug} (silo): applied 0002_chunk" in report
    assert "2 of 2 tenants migrated." in report
    for tenant in (bridge, silo):
        assert dataplane_pending(tenant=tenant) == []
        assert "rag_chunk" in _tables(tenant)

    again = io.StringIO()
    call_command("migrate_tenants", stdout=again, stderr=io.StringIO())
    assert f"{bridge.slug} (bridge): up to date" in again.getvalue()


def test_a_failing_tenant_is_reported_and_the_others_still_migrate(make_tenant):
    from django.core.management.base import CommandError

    from tests.helpers import superuser

    broken, fine = make_tenant("silo"), make_tenant("bridge")
    _roll_back_to_initial(fine)
    placement.forget(broken)
    with superuser() as conn:
        conn.execute(f'DROP DATABASE "{broken.silo_database}" WITH (FORCE)')
    out = io.StringIO()
    with pytest.raises(CommandError, match=broken.slug):
        call_command("migrate_tenants", stdout=out, stderr=io.StringIO())
    assert f"{broken.slug} (silo): FAILED" in out.getvalue()
    assert f"{fine.slug} (bridge): applied 0002_chunk" in out.getvalue()
    # resumable: once the broken one is gone, a re-run finishes cleanly
    from tenants.models import Tenant

    Tenant.objects.filter(pk=broken.pk).delete()
    call_command("migrate_tenants", stdout=io.StringIO(), stderr=io.StringIO())
    assert dataplane_pending(tenant=fine) == []

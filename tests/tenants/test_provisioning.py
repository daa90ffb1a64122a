"""Create, suspend, resume and delete: delete removes every trace of the tenant's data."""

import psycopg
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from rag.models import Document
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.services.provisioning import (
    tenant_create,
    tenant_delete,
    tenant_resume,
    tenant_suspend,
)
from tests.helpers import MODES, connect, superuser


def _rows_everywhere(tenant_id) -> int:
    """Counts behind RLS (as superuser) in the pool table, every schema and every database."""
    with superuser("tenantry") as conn:
        total = conn.execute(
            "SELECT count(*) FROM public.rag_document WHERE tenant_id = %s", [tenant_id]
        ).fetchone()[0]
        schemas = [
            r[0]
            for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_%'")
        ]
        for schema in schemas:
            total += conn.execute(
                f'SELECT count(*) FROM "{schema}".rag_document WHERE tenant_id = %s',
                [tenant_id],
            ).fetchone()[0]
    return total


def _placement_exists(mode: str, schema: str, database: str) -> bool:
    if mode == "bridge":
        with superuser("tenantry") as conn:
            return (
                conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
                is not None
            )
    if mode == "silo":
        with superuser() as conn:
            return (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
                is not None
            )
    return True


@pytest.mark.parametrize("mode", MODES)
def test_delete_removes_all_of_the_tenants_data(make_tenant, mode):
    keep, gone = make_tenant(mode), make_tenant(mode)
    for tenant in (keep, gone):
        with tenant_context(tenant):
            Document.objects.create(title="x", content_hash=tenant.slug.ljust(64, "0"))
    assert _rows_everywhere(gone.id) == (1 if mode != "silo" else 0)
    gone_id, where = gone.id, (mode, gone.schema_name, gone.silo_database)
    assert _placement_exists(*where)
    tenant_delete(tenant=gone)
    assert not Tenant.objects.filter(pk=gone_id).exists()
    assert _rows_everywhere(gone_id) == 0
    if mode != "pool":
        assert not _placement_exists(*where)
    with tenant_context(keep):
        assert Document.objects.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_suspend_keeps_data_and_resume_restores(make_tenant, mode):
    tenant = make_tenant(mode)
    with tenant_context(tenant):
        Document.objects.create(title="kept", content_hash="k" * 64)
    assert tenant_suspend(tenant=tenant).status == "suspended"
    assert tenant_resume(tenant=tenant).status == "active"
    with tenant_context(tenant):
        assert Document.objects.get().title == "kept"


def test_bridge_schema_holds_its_own_tables_with_rls(make_tenant):
    tenant = make_tenant("bridge")
    with superuser("tenantry") as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r' "
            "AND c.relname LIKE 'rag_%%' ORDER BY 1",
            [tenant.schema_name],
        ).fetchall()
    # Every data-plane table of the schema, each with RLS enabled and forced.
    from django.apps import apps

    tables = sorted(m._meta.db_table for m in apps.get_app_config("rag").get_models())
    assert "rag_document" in tables and "rag_chunk" in tables
    assert rows == [(table, True, True) for table in tables]


@pytest.mark.parametrize("slug", ["", "A", "UPPER", "1abc", "has space", "x" * 41])
def test_invalid_slugs_are_refused(pg, slug):
    with pytest.raises(ValidationError):
        tenant_create(slug=slug, mode="pool")
    assert not Tenant.objects.filter(slug=slug).exists()


def test_dsn_is_only_for_silo(pg):
    with pytest.raises(ValidationError):
        tenant_create(slug="pooled", mode="pool", silo_dsn="postgresql://x@y/z")


def test_failed_silo_provisioning_leaves_nothing_behind(pg):
    from tenants.services.provisioning import ProvisioningError

    with pytest.raises(ProvisioningError):
        tenant_create(
            slug="broken",
            mode="silo",
            silo_dsn="postgresql://nobody:nothing@/postgres?host=/nonexistent",
        )
    assert not Tenant.objects.filter(slug="broken").exists()


@pytest.mark.parametrize("mode", MODES)
def test_the_app_role_cannot_rewrite_the_migration_history(make_tenant, mode):
    tenant = make_tenant(mode)
    database = tenant.silo_database or settings.DATABASES["default"]["NAME"]
    schema = tenant.schema_name if mode == "bridge" else "public"
    with connect("default", dbname=database) as conn:
        for statement in ("SELECT count(*) FROM {}", "DELETE FROM {}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.format(f"{schema}.django_migrations"))

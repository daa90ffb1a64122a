"""Raw SQL as the app role: PostgreSQL itself keeps pool rows apart."""

import psycopg
import pytest

from rag.models import Document
from tenants.context import tenant_context
from tests.helpers import connect


@pytest.fixture
def two_pool_tenants(make_tenant):
    a, b = make_tenant("pool"), make_tenant("pool")
    for tenant, n in ((a, 2), (b, 3)):
        with tenant_context(tenant):
            for i in range(n):
                Document.objects.create(
                    title=f"{tenant.slug}-{i}", content_hash=f"{tenant.slug}{i}".ljust(64, "0")
                )
    return a, b


def _count(conn, setting: str | None) -> int:
    with conn.transaction():
        if setting is not None:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", [setting])
        return conn.execute("SELECT count(*) FROM rag_document").fetchone()[0]


def test_pool_rows_follow_only_the_tenant_setting(two_pool_tenants):
    a, b = two_pool_tenants
    with connect("default") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "tenantry_app"
        assert _count(conn, None) == 0
        assert _count(conn, "") == 0
        assert _count(conn, str(a.id)) == 2
        assert _count(conn, str(b.id)) == 3
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(b.id)])
            titles = {r[0] for r in conn.execute("SELECT title FROM rag_document")}
        assert titles == {f"{b.slug}-{i}" for i in range(3)}


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE rag_document DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE rag_document NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON rag_document",
        "SET ROLE tenantry_owner",
        "TRUNCATE rag_document",
        "CREATE TABLE sneaky (id int)",
    ],
)
def test_the_app_role_cannot_switch_rls_off_or_become_the_owner(two_pool_tenants, statement):
    with connect("default") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_row_security_off_is_an_error_not_a_bypass(two_pool_tenants):
    with connect("default") as conn:
        conn.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM rag_document")


def test_the_app_role_is_not_superuser_and_cannot_bypass_rls(pg):
    with connect("default") as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user"
        ).fetchone()[0]
    assert row == (False, False, False, False)
    assert owned == 0

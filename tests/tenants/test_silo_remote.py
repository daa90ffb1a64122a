"""A silo tenant on a second PostgreSQL server (a second embedded instance) works end to end."""

from config import embedded
from rag.models import Document
from tenants.context import tenant_context
from tests.helpers import bearer, superuser


def _remote_databases(server) -> set[str]:
    import psycopg

    dsn = f"host={server.socket_dir} port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_silo_on_another_server_end_to_end(make_tenant, make_key, api, second_server):
    dsn = second_server.url(embedded.OWNER_ROLE, database="postgres")
    tenant = make_tenant("silo", silo_dsn=dsn)
    other = make_tenant("silo")
    assert tenant.silo_database in _remote_databases(second_server)
    with superuser() as local:
        local_dbs = {r[0] for r in local.execute("SELECT datname FROM pg_database")}
    assert tenant.silo_database not in local_dbs  # it lives on the second server only

    with tenant_context(tenant):
        Document.objects.create(title="remote", content_hash="r" * 64)
    with tenant_context(tenant):
        assert list(Document.objects.values_list("title", flat=True)) == ["remote"]
    with tenant_context(other):
        assert Document.objects.count() == 0
    assert api.get("/api/v1/tenant", **bearer(make_key(tenant))).json()["mode"] == "silo"

    from tenants.services.provisioning import tenant_delete

    name = tenant.silo_database
    tenant_delete(tenant=tenant)
    assert name not in _remote_databases(second_server)

"""Fixtures for control-plane tests: a second PostgreSQL server for remote silos, and the
upload helpers of the data-plane tests."""

import pytest
from django.conf import settings

from config import embedded
from tests.rag.conftest import upload, wait_done  # noqa: F401 - fixtures
from tests.tenants.clock import mid_hour  # noqa: F401 - fixture


@pytest.fixture(scope="session")
def second_server(tmp_path_factory):
    """A second embedded PostgreSQL (its own data directory), for silos on another server."""
    pgdata = tmp_path_factory.mktemp("second-server") / "pgdata"
    server = embedded.start_postgres(pgdata, passwords_from=settings.DATA_DIR)
    yield server
    embedded.stop_postgres(pgdata)


@pytest.fixture
def server_b(pg, second_server):
    """The second embedded PostgreSQL, registered as the data-plane server `srv-b`; whatever
    tests leave on it is removed after."""
    from tenants.models import Tenant, TenantMove
    from tenants.services.provisioning import tenant_delete
    from tenants.services.servers import server_add, server_remove

    dsn = second_server.url(embedded.OWNER_ROLE, database="tenantry_data")
    server = server_add(name="srv-b", dsn=dsn)
    yield server
    for tenant in Tenant.objects.filter(server=server):
        tenant_delete(tenant=tenant)
    TenantMove.objects.filter(target_server=server).delete()
    TenantMove.objects.filter(source_server=server).delete()
    server_remove(name="srv-b")

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

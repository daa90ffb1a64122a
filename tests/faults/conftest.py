import pytest

from tests.faults.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory, django_db_setup):
    """A platform of its own whose servers a test may stop (tests/faults/stack.py)."""
    platform = Stack(tmp_path_factory.mktemp("fault-stack"))
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()  # also after a failed start: no redis-server or PostgreSQL left behind

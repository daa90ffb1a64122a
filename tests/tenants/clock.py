"""Request windows are clock hours: tests that count within one hour pin the quota clock.

`mid_hour` pins it (in this process) at half past the current hour, so a test's requests stay
in one window however long it runs. A request served by another process (the web server) is
on the database's clock: a test counting those reruns a burst that straddled the hour.
"""

from datetime import UTC, datetime

import pytest

from tenants.services.quotas import quota_clock


@pytest.fixture
def mid_hour():
    """The quota clock pinned at half past the current hour (UTC) for the test; yields it."""
    at = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    with quota_clock(at):
        yield at

"""Request windows are clock hours: tests that count within one hour pin the quota clock.

`mid_hour` pins it (in this process) at half past the current hour, so a test's requests stay
in one window however long it runs. A request served by another process (the web server) is
on the database's clock: only a test counting those still has to keep off the hour boundary.
"""

import time
from datetime import UTC, datetime

import pytest

from tenants.services.quotas import quota_clock


@pytest.fixture
def mid_hour():
    """The quota clock pinned at half past the current hour (UTC) for the test; yields it."""
    at = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    with quota_clock(at):
        yield at


def away_from_the_hour_boundary(margin: float = 15) -> None:
    """Sleep into the next hour if fewer than `margin` seconds of this one are left (for
    requests to other processes, which the pinned clock does not reach)."""
    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin:
        time.sleep(left + 1)

"""Request windows are clock hours: tests that count within one hour avoid its last seconds."""

import time
from datetime import UTC, datetime


def away_from_the_hour_boundary(margin: float = 15) -> None:
    """Sleep into the next hour if fewer than `margin` seconds of this one are left."""
    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin:
        time.sleep(left + 1)

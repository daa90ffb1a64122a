"""Usage against a limit, as the console draws it: one bar builder for every page."""

from __future__ import annotations


def meter(label: str, used: int, limit: int, *, note: str = "", in_bytes: bool = False) -> dict:
    """A bar: how full (percent, capped at 100; a zero limit is full), what is left, and whether
    the numbers are bytes (the templates format them so)."""
    return {
        "label": label,
        "used": used,
        "limit": limit,
        "remaining": max(0, limit - used),
        "percent": min(100, round(100 * used / limit)) if limit else 100,
        "full": used >= limit,
        "note": note,
        "in_bytes": in_bytes,
    }

"""htmx helpers: one view serves the full page and, to htmx, the fragment it swaps."""

from __future__ import annotations


def wants_fragment(request) -> bool:
    """An htmx request for a fragment: not a boosted link, nor htmx restoring a whole page
    that is no longer in its history cache (that needs the full page)."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request

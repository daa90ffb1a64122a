"""Console views for a tenant's data plane (staff only).

Thin: they look the tenant up, validate input and call the same services and selectors as the
API and the commands; every data-plane read runs in the tenant's context. htmx fragments are
served by the same views as the full pages (`request.htmx` picks the partial template).
"""


def wants_fragment(request) -> bool:
    """An htmx request for a partial; not a history restore, which needs the whole page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request

"""The query log (recent searches and answers) and the chunk view its citations link to."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from rag.models import QueryLog
from rag.selectors import chunk_get, querylog_list

from ..decorators import staff_tenant
from ..htmx import wants_fragment

SHOWN = 100
# (column, timing keys in order of preference): searches report `search_ms` for retrieval.
STAGES = (
    ("embed", ("embed_ms",)),
    ("retrieve", ("retrieve_ms", "search_ms")),
    ("ttft", ("ttft_ms",)),
    ("generate", ("generate_ms",)),
    ("total", ("total_ms",)),
)


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def queries(request, tenant):
    """The tenant's newest queries; `?kind=search|answer` filters (htmx: the table only)."""
    kind = request.GET.get("kind", "")
    if kind not in dict(QueryLog.KINDS):
        kind = ""
    logs = querylog_list(tenant=tenant, limit=SHOWN, kind=kind or None)
    for log in logs:
        log.stages = [_stage(log.timings, keys) for _, keys in STAGES]
    context = {
        "tenant": tenant,
        "tab": "queries",
        "nav": "tenants",
        "logs": logs,
        "kind": kind,
        "plural": {"search": "searches", "answer": "answers"}.get(kind, "searches and answers"),
        "stages": [name for name, _ in STAGES],
        "shown": SHOWN,
    }
    template = (
        "console/rag/_queries_table.html" if wants_fragment(request) else "console/rag/queries.html"
    )
    return render(request, template, context)


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def chunk(request, tenant, chunk_id):
    """A chunk of the tenant (read in its context): another tenant's chunk id is a 404."""
    found = chunk_get(tenant=tenant, chunk_id=chunk_id)
    if found is None:
        raise Http404("No such chunk.")
    context = {"tenant": tenant, "tab": "documents", "nav": "tenants", "chunk": found}
    template = "console/rag/_chunk.html" if wants_fragment(request) else "console/rag/chunk.html"
    return render(request, template, context)


def _stage(timings: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if timings.get(key) is not None:
            return timings[key]
    return None
